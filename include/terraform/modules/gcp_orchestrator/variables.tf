variable "tenant_id" {
  description = "The Patchcycle tenant id (names the service account and the custom role)."
  type        = string
}

variable "projects" {
  description = "The tenant's Google Cloud projects and zones; the service account lives in the first."
  type = list(object({
    project_id    = string
    zones         = list(string)
    connection_id = string
  }))
}

variable "falcon_rollout" {
  description = "Whether the tenant declares a Falcon roll-out (falcon.rollout): then the role may manage the sensor's OS policy assignments."
  type        = bool
  default     = false
}
