# The orchestrator's identity in a tenant's Google Cloud projects: one service account (in the first
# project) and, in every project, one custom role holding exactly the permissions the calls of
# hooks/gcp_osconfig.OsConfigHook and hooks/gcp_compute.DiskSnapshotHook need (tests/terraform holds
# the list to the hooks' client calls). The predefined roles (roles/osconfig.patchJobExecutor,
# roles/compute.instanceAdmin.v1, roles/compute.storageAdmin) each grant far more than the cycle does.
# No key is created: the gcp_<tenant> connection uses workload identity federation or a key the
# platform issues under its own rotation.
# Permissions per method: OS Config (https://cloud.google.com/compute/docs/osconfig/rest, "IAM
# permissions" of each method; https://cloud.google.com/iam/docs/roles-permissions/osconfig) and
# Compute Engine (https://cloud.google.com/compute/docs/reference/rest/v1, each method's "IAM
# Permissions": disks.createSnapshot needs compute.disks.createSnapshot and compute.snapshots.create,
# and compute.snapshots.setLabels for labels; disks.insert from a snapshot compute.disks.create,
# compute.disks.setLabels and compute.snapshots.useReadOnly; instances.attachDisk compute.disks.use).
# Terraform google provider: google_service_account, google_project_iam_custom_role,
# google_project_iam_member (https://registry.terraform.io/providers/hashicorp/google/latest/docs).

locals {
  project_ids = [for p in var.projects : p.project_id]
  # Service account ids: 6-30 characters, lower-case letters, digits and hyphens.
  account_id = substr(replace("patchcycle-${var.tenant_id}", "_", "-"), 0, 30)
  permissions = [
    "compute.disks.create",
    "compute.disks.createSnapshot",
    "compute.disks.setLabels",
    "compute.disks.use",
    "compute.instances.attachDisk",
    "compute.instances.detachDisk",
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.start",
    "compute.instances.stop",
    "compute.snapshots.create",
    "compute.snapshots.get",
    "compute.snapshots.list",
    "compute.snapshots.setLabels",
    "compute.snapshots.useReadOnly",
    "compute.zoneOperations.get",
    "osconfig.inventories.list",
    "osconfig.patchJobs.exec",
    "osconfig.patchJobs.get",
    "osconfig.patchJobs.list",
    "osconfig.vulnerabilityReports.list",
  ]
  # Only for a tenant with a Falcon roll-out (var.falcon_rollout): OS policy assignments that install the
  # sensor, their operations (operations.get needs osconfig.osPolicyAssignments.get) and reports.
  falcon_permissions = [
    "osconfig.osPolicyAssignmentReports.list",
    "osconfig.osPolicyAssignments.create",
    "osconfig.osPolicyAssignments.get",
    "osconfig.osPolicyAssignments.update",
  ]
}

resource "google_service_account" "orchestrator" {
  project      = local.project_ids[0]
  account_id   = local.account_id
  display_name = "Patchcycle orchestrator (${var.tenant_id})"
}

resource "google_project_iam_custom_role" "orchestrator" {
  for_each    = toset(local.project_ids)
  project     = each.value
  role_id     = "patchcycle_${var.tenant_id}"
  title       = "Patchcycle orchestrator (${var.tenant_id})"
  description = "OS Config inventories, vulnerability reports and patch jobs; disk snapshots and restores."
  permissions = var.falcon_rollout ? concat(local.permissions, local.falcon_permissions) : local.permissions
}

resource "google_project_iam_member" "orchestrator" {
  for_each = toset(local.project_ids)
  project  = each.value
  role     = google_project_iam_custom_role.orchestrator[each.value].name
  member   = "serviceAccount:${google_service_account.orchestrator.email}"
}
