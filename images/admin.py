from django.contrib import admin

from images.models import Batch, BatchImage, Preset, Variant
from portal.admin_audit import AuditedModelAdmin, HistoryAdmin


@admin.register(Preset)
class PresetAdmin(AuditedModelAdmin):
    """Presets are edited here; a batch keeps a copy of its preset's settings, so an edit
    applies to batches made after it."""

    list_display = [
        "name",
        "sizes",
        "make_jpeg",
        "make_webp",
        "make_avif",
        "is_default",
        "is_active",
        "updated_at",
    ]
    list_filter = ["is_active", "make_avif"]
    search_fields = ["name", "description"]
    fieldsets = [
        (None, {"fields": ["name", "description", "is_default", "is_active"]}),
        ("Sizes and formats", {"fields": ["sizes", "make_jpeg", "make_webp", "make_avif"]}),
        (
            "Encoder settings",
            {
                "fields": [
                    "jpeg_quality",
                    "webp_quality",
                    "webp_method",
                    "webp_method_smaller",
                    "avif_quality",
                    "avif_speed",
                    "measure_ssim",
                ],
            },
        ),
    ]

    def has_delete_permission(self, request, obj=None):
        # A preset with batches is protected by its foreign key; deactivate it instead.
        return super().has_delete_permission(request, obj) and (
            obj is None or not obj.batches.exists()
        )


class BatchImageInline(admin.TabularInline):
    model = BatchImage
    extra = 0
    fields = [
        "position",
        "original_name",
        "status",
        "bytes",
        "bytes_after",
        "attempts",
        "worker",
        "error",
    ]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Batch)
class BatchAdmin(HistoryAdmin):
    """Read-only: batches are made, retried and deleted on their pages (deleting one here
    would leave its files behind)."""

    list_display = [
        "name",
        "status",
        "images_total",
        "source",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "source"]
    search_fields = ["name"]
    date_hierarchy = "created_at"
    inlines = [BatchImageInline]


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ["size", "format", "width", "height", "bytes", "kept", "ssim", "path", "note"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BatchImage)
class BatchImageAdmin(HistoryAdmin):
    list_display = [
        "original_name",
        "batch",
        "status",
        "bytes",
        "bytes_after",
        "attempts",
        "finished_at",
    ]
    list_filter = ["status"]
    search_fields = ["original_name", "content_hash", "batch__name"]
    inlines = [VariantInline]


@admin.register(Variant)
class VariantAdmin(HistoryAdmin):
    """Every variant made, searchable by its image (also shown inline on the image)."""

    list_display = ["image", "size", "format", "width", "height", "bytes", "kept", "ssim"]
    list_filter = ["format", "kept", "size"]
    search_fields = ["image__original_name", "image__batch__name"]
    list_select_related = ["image"]
