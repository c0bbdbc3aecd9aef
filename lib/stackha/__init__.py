"""stackha: OpenStack control plane high availability on Pacemaker + Corosync."""

__version__ = "0.1.0"
