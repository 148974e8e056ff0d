module "patch_baselines" {
  source    = "../../modules/ssm_patch_baselines"
  baselines = var.patch_baselines
  tags      = var.compliance_tags
}

module "falcon_install_document" {
  source                            = "../../modules/falcon_install_document"
  count                             = var.falcon == null ? 0 : 1
  document_name                     = var.falcon.document_name
  cid_parameter_name                = var.falcon.parameter_names.cid
  installation_token_parameter_name = var.falcon.parameter_names.installation_token
  tags                              = var.compliance_tags
}

module "launch_template" {
  source              = "../../modules/launch_template"
  for_each            = var.launch_templates
  name                = each.value.name
  image_parameter     = each.value.image_parameter
  patch_group         = each.value.patch_group
  patch_group_tag_key = var.patch_group_tag_key
  install_list_bucket = var.evidence.bucket
  tags                = var.compliance_tags
}

module "orchestrator_iam_aws" {
  source                  = "../../modules/orchestrator_iam_aws"
  role_name               = var.aws_scope.execution_role_name
  trusted_principal_arn   = var.platform.orchestrator_principal_arn
  rds                     = var.rds
  falcon                  = var.falcon
  falcon_installer_bucket = var.falcon_installer_bucket
  tags                    = var.compliance_tags
}

module "evidence_bucket" {
  source               = "../../modules/evidence_bucket"
  count                = var.tenant_wide ? 1 : 0
  providers            = { aws = aws.evidence }
  bucket               = var.evidence.bucket
  retention_days       = var.evidence.retention_days
  writer_principal_arn = var.platform.orchestrator_principal_arn
  reader_account_ids   = var.evidence.reader_account_ids
  tags                 = var.compliance_tags
}

module "azure_orchestrator" {
  source              = "../../modules/azure_orchestrator"
  count               = var.tenant_wide && var.azure != null ? 1 : 0
  tenant_id           = var.tenant_id
  subscriptions       = var.azure.subscriptions
  principal_object_id = var.platform.azure_principal_object_id
  falcon_rollout      = var.falcon_rollout
}

module "gcp_orchestrator" {
  source         = "../../modules/gcp_orchestrator"
  count          = var.tenant_wide && var.gcp != null ? 1 : 0
  tenant_id      = var.tenant_id
  projects       = var.gcp.projects
  falcon_rollout = var.falcon_rollout
}
