# The tenant's account and region; allowed_account_ids stops an apply with the wrong credentials.
provider "aws" {
  region              = var.aws_scope.region
  allowed_account_ids = [var.aws_scope.account_id]
}

# The evidence bucket lives in the platform's account (the patchcycle_evidence connection's), in the
# tenant's evidence region.
provider "aws" {
  alias  = "evidence"
  region = var.evidence.region
}

provider "azurerm" {
  features {}
  subscription_id = try(var.azure.subscriptions[0].subscription_id, null)
}

provider "google" {
  project = try(var.gcp.projects[0].project_id, null)
}
