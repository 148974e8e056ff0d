"""fleetsim: the local multi-cloud emulator Patchcycle runs against by default.

It is a program of its own. The product never imports it; the unmodified vendor SDKs talk to it over
HTTP on loopback, exactly as they would talk to the clouds. AWS is moto's server plus fleetsim's
add-ons for what moto lacks (SSM fleet and patching, slow and failing AMIs); the fleet itself comes
from a scenario file and its ground truth is served at ``/fleetsim/ground-truth``.
"""
