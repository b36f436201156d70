"""Descriptors of atomic environments with analytic derivatives: SOAP (dscribe's definition),
ACSF, the 2-body distance, and QUIP's SOAP, distance_2b and angle_3b; numba kernels live in the
private leaf modules (``_soap_kernels``, ``_acsf_kernels``, ``_quip_soap_kernels``, ...)."""
