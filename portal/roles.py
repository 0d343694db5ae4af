"""The portal's roles. The groups themselves are made by data migrations (portal 0002 on)."""

OPERATOR = "Operator"
MANAGER = "Manager"
IMAGE_STAFF = "Image staff"
ADMIN = "Admin"
# Sees data-subject requests' identifiers and exports (GDPR), with Admin.
DPO = "DPO"
ROLES = (OPERATOR, MANAGER, IMAGE_STAFF, DPO, ADMIN)
