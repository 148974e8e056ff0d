"""fleetsim's CrowdStrike Falcon API: OAuth2 tokens, hosts (device records) and sensor-update kernels."""
