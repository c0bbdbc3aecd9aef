"""CIB templates rendered from a site description, checked, and applied to a cluster."""
