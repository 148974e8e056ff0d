output "role_definition_ids" {
  description = "The two custom roles' resource ids."
  value = {
    arc_patching   = azurerm_role_definition.arc_patching.role_definition_resource_id
    arc_operations = azurerm_role_definition.arc_operations.role_definition_resource_id
  }
}
