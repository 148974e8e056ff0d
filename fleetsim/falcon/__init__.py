"""fleetsim's CrowdStrike Falcon API: OAuth2 tokens, hosts (device records), host groups, prevention and
sensor-update policies, alerts, ML and IOA exclusions, and the sensor-update kernels (:mod:`.api` serves
them; one module per service, their per-customer state in :mod:`.backend`)."""
