variable "document_name" {
  description = "Name of the SSM Command document the Falcon roll-out runs."
  type        = string
}

variable "cid_parameter_name" {
  description = "Name of the SecureString parameter holding the tenant's Falcon CID (the value is never here)."
  type        = string
}

variable "installation_token_parameter_name" {
  description = "Name of the SecureString parameter holding the Falcon installation token (never the value)."
  type        = string
}

variable "tags" {
  description = "Compliance tags."
  type        = map(string)
}
