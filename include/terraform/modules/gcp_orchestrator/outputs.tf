output "service_account_email" {
  description = "The orchestrator's service account."
  value       = google_service_account.orchestrator.email
}
