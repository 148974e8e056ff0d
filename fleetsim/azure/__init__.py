"""Azure for fleetsim: Resource Manager (Arc-enabled servers, Update Manager's installPatches, Resource
Graph) in :mod:`fleetsim.azure.arm`, and the tenants' backup system that attests recent good backups of
Arc machines in :mod:`fleetsim.azure.attestation` (Arc servers have no snapshot API in Azure).
"""
