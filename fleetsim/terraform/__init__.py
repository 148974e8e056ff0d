"""fleetsim plays ``terraform apply`` for the demo tenants' AWS scope, and the console edits after it.

:mod:`.root` reads a tenant's example root (include/terraform/tenants/<tenant>) as data: its tfvars and
its S3 backend. :mod:`.declared` says what the root's modules declare for those inputs, module by
module, with the values the AWS provider would send and keep in the state. :mod:`.apply` creates each
resource through fleetsim's own AWS endpoint as the Terraform role (so CloudTrail records the apply) and
writes the matching state file (format version 4, :mod:`.state`) to the backend's bucket and key.
:mod:`.console` makes a scenario's console edits afterwards, each by a named person. fleetsim never
imports the product: the module layout is mirrored here and tests/fleetsim/test_terraform_apply.py
holds it to the modules' HCL.
"""
