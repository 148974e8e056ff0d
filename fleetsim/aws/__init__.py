"""fleetsim's AWS add-ons: what moto lacks, installed into the moto server running in this process."""
