"""The evidence pack of a cycle and where it is kept: the PDF report, the per-host CSV, the SHA-256
manifest and its verification, the cross-tenant portfolio report, and the write-once evidence store.
"""
