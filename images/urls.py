from django.urls import path

from images import views

app_name = "images"

urlpatterns = [
    path("", views.batch_list, name="batch_list"),
    path("new/", views.batch_new, name="batch_new"),
    path("batches/<int:pk>/", views.batch_detail, name="batch_detail"),
    path("batches/<int:pk>/retry/", views.batch_retry, name="batch_retry"),
    path("batches/<int:pk>/delete/", views.batch_delete_view, name="batch_delete"),
    path("batches/<int:pk>/variants.zip", views.batch_download, name="batch_download"),
    path("batches/<int:pk>/images/<int:image_pk>/", views.image_compare, name="image_compare"),
    path("files/originals/<int:image_pk>/", views.original_file, name="original_file"),
    path("files/variants/<int:variant_pk>/", views.variant_file, name="variant_file"),
]
