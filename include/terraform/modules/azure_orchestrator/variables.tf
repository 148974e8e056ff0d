variable "tenant_id" {
  description = "The Patchcycle tenant id (names the custom roles)."
  type        = string
}

variable "subscriptions" {
  description = "The tenant's Azure subscriptions and the resource groups holding its Arc-enabled servers."
  type = list(object({
    subscription_id = string
    resource_groups = list(string)
    connection_id   = string
  }))
}

variable "principal_object_id" {
  description = "Object id of the service principal (or managed identity) the azure_<tenant> connection signs in as."
  type        = string
}

variable "falcon_rollout" {
  description = "Whether the tenant declares a Falcon roll-out (falcon.rollout): then the orchestrator may put the sensor extension."
  type        = bool
  default     = false
}
