variable "name" {
  description = "Launch template name; also names the instance role and profile."
  type        = string
}

variable "image_parameter" {
  description = "Public SSM parameter holding the AMI id (an Amazon Linux image, which ships the SSM agent)."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type of the example template."
  type        = string
  default     = "t3.micro"
}

variable "patch_group_tag_key" {
  description = "The patch group tag key (\"Patch Group\", case-sensitive)."
  type        = string
}

variable "patch_group" {
  description = "The patch group the instances join at launch (the baseline of their OS family)."
  type        = string
}

variable "install_list_bucket" {
  description = "The evidence bucket holding the cycle's install lists (InstallOverrideList), read by the hosts."
  type        = string
}

variable "tags" {
  description = "Compliance tags, on the template, its instances and volumes, and the role."
  type        = map(string)
}
