output "baselines_seeded_as_of" {
  description = "The cycle date whose cutoff seeded new baselines (the cycle owns the cutoff afterwards)."
  value       = var.as_of
}

output "baseline_ids" {
  description = "BaselineId by OS family."
  value       = module.patch_baselines.baseline_ids
}

output "airflow_connections" {
  description = "What to put in the Airflow connections this root serves."
  value = {
    aws = {
      connection_id = var.aws_scope.connection_id
      role_arn      = module.orchestrator_iam_aws.execution_role_arn
      region_name   = var.aws_scope.region
    }
    evidence = {
      connection_id = var.evidence.connection_id
      bucket        = var.evidence.bucket
    }
    azure = var.azure == null ? [] : [for s in var.azure.subscriptions : s.connection_id]
    gcp = var.gcp == null ? {} : {
      for p in var.gcp.projects : p.connection_id => try(module.gcp_orchestrator[0].service_account_email, null)
    }
  }
}

output "identity_reader_policy_json" {
  description = "Attach in the management account to the access review's Identity Center role."
  value       = module.orchestrator_iam_aws.identity_reader_policy_json
}
