# One state per tenant AWS account and region (patchcycle.domain.terraform_vars: a root instance
# manages one scope). Backend blocks cannot read variables, so the key is written out; another scope
# of the tenant uses the same root with `terraform init -backend-config=key=tenants/cu_alpha/<account>/<region>/terraform.tfstate`
# and the export for that scope (`python -m patchcycle terraform-vars cu_alpha --account <id> --region <r>`).
# The state bucket is the platform's: versioned, encrypted, locked with S3 lock files (use_lockfile,
# https://developer.hashicorp.com/terraform/language/backend/s3).
terraform {
  backend "s3" {
    bucket       = "patchcycle-terraform-state"
    key          = "tenants/cu_alpha/111111111111/us-east-1/terraform.tfstate"
    region       = "us-east-1"
    encrypt      = true
    use_lockfile = true
  }
}
