"""The only code that talks to clouds and vendor APIs: AWS (SSM, EC2, RDS, S3, IAM Identity Center),
Azure Arc, Google Cloud (Compute Engine, OS Config), CrowdStrike Falcon, Dynatrace, PagerDuty and the
tenant's backup system.
"""
