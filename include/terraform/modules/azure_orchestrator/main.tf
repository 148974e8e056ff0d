# The orchestrator's rights on a tenant's Arc-enabled servers: exactly what hooks/azure_arc.ArcHook does
# (tests/terraform/test_orchestrator_iam.py holds these lists to the hook's SDK calls), in two custom
# roles, because the calls reach two scopes:
# - per resource group (where the machines are): list and read machines, installPatches and
#   assessPatches, and the patch assessment and installation results Resource Graph returns (Resource
#   Graph returns only resources the caller may read:
#   https://learn.microsoft.com/azure/governance/resource-graph/overview#permissions-in-azure-resource-graph);
# - per subscription: the Resource Graph query itself, and the long-running operations' status URLs
#   (the 202's Location header is /subscriptions/{id}/providers/Microsoft.HybridCompute/locations/...).
# - only for a tenant with a Falcon roll-out (var.falcon_rollout), per resource group: put and read
#   CrowdStrike's machine extension (MachineExtensions_CreateOrUpdate and _Get). Writing extensions can
#   run code on a machine, so a tenant without a roll-out never gets it.
# Action names: Azure resource provider operations, Microsoft.HybridCompute and Microsoft.ResourceGraph
# (https://learn.microsoft.com/azure/role-based-access-control/permissions/hybrid-multicloud,
# https://learn.microsoft.com/azure/role-based-access-control/permissions/management-and-governance).
# Terraform azurerm provider: azurerm_role_definition, azurerm_role_assignment
# (https://registry.terraform.io/providers/hashicorp/azurerm/latest/docs/resources/role_definition).

locals {
  resource_group_scopes = flatten([
    for s in var.subscriptions : [
      for rg in s.resource_groups : "/subscriptions/${s.subscription_id}/resourceGroups/${rg}"
    ]
  ])
  subscription_scopes = [for s in var.subscriptions : "/subscriptions/${s.subscription_id}"]
}

resource "azurerm_role_definition" "arc_patching" {
  name              = "Patchcycle Arc patching (${var.tenant_id})"
  scope             = local.subscription_scopes[0]
  description       = "Read Arc-enabled servers, assess and install their patches, read the results."
  assignable_scopes = local.resource_group_scopes

  permissions {
    actions = [
      "Microsoft.HybridCompute/machines/assessPatches/action",
      "Microsoft.HybridCompute/machines/installPatches/action",
      "Microsoft.HybridCompute/machines/patchAssessmentResults/read",
      "Microsoft.HybridCompute/machines/patchAssessmentResults/softwarePatches/read",
      "Microsoft.HybridCompute/machines/patchInstallationResults/softwarePatches/read",
      "Microsoft.HybridCompute/machines/read",
    ]
    not_actions = []
  }
}

resource "azurerm_role_definition" "arc_operations" {
  name              = "Patchcycle Arc operations and Resource Graph (${var.tenant_id})"
  scope             = local.subscription_scopes[0]
  description       = "Query Resource Graph; read the status of Arc patch operations."
  assignable_scopes = local.subscription_scopes

  permissions {
    actions = [
      "Microsoft.HybridCompute/locations/operationresults/read",
      "Microsoft.HybridCompute/locations/operationstatus/read",
      "Microsoft.ResourceGraph/resources/read",
    ]
    not_actions = []
  }
}

resource "azurerm_role_assignment" "arc_patching" {
  for_each           = toset(local.resource_group_scopes)
  scope              = each.value
  role_definition_id = azurerm_role_definition.arc_patching.role_definition_resource_id
  principal_id       = var.principal_object_id
}

resource "azurerm_role_assignment" "arc_operations" {
  for_each           = toset(local.subscription_scopes)
  scope              = each.value
  role_definition_id = azurerm_role_definition.arc_operations.role_definition_resource_id
  principal_id       = var.principal_object_id
}

resource "azurerm_role_definition" "arc_falcon_extension" {
  count             = var.falcon_rollout ? 1 : 0
  name              = "Patchcycle Arc Falcon sensor extension (${var.tenant_id})"
  scope             = local.subscription_scopes[0]
  description       = "Put and read the CrowdStrike Falcon sensor extension on Arc-enabled servers."
  assignable_scopes = local.resource_group_scopes

  permissions {
    actions = [
      "Microsoft.HybridCompute/machines/extensions/read",
      "Microsoft.HybridCompute/machines/extensions/write",
    ]
    not_actions = []
  }
}

resource "azurerm_role_assignment" "arc_falcon_extension" {
  for_each           = var.falcon_rollout ? toset(local.resource_group_scopes) : toset([])
  scope              = each.value
  role_definition_id = azurerm_role_definition.arc_falcon_extension[0].role_definition_resource_id
  principal_id       = var.principal_object_id
}
