"""The namespace lab: Pacemaker cluster nodes as Linux namespaces on one machine."""
