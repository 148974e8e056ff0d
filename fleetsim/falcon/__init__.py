"""fleetsim's CrowdStrike Falcon API: OAuth2 tokens, hosts (device records), host groups, prevention and
sensor-update policies, alerts, ML and IOA exclusions, the sensor-update kernels, and the Sensor Download API
(installers, their bytes, the CCID) (:mod:`.api` serves them; one module per service, their per-customer
state in :mod:`.backend`)."""
