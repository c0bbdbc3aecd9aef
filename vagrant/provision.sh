#!/bin/sh
# Provision one controller of the Vagrant lab with the steps the namespace lab performs:
# the same Debian packages (in stackha's box already), stackha's packages, corosync.conf and /etc/hosts from the same
# code, the shared authkey, then the cluster. Idempotent: vagrant provision may run it again.
#
#   provision.sh NODE_NAME NODE_COUNT SUBNET SHARED   (SHARED: the host's shared folder: authkey)
set -eu
name=$1
nodes=$2
subnet=$3
shared=$4
source=/opt/stackha

if dpkg-query -W -f='${Status}' stackha-lab 2>/dev/null | grep -q 'install ok installed'; then
    # stackha's own box (make vagrant-box): the node's packages and stackha's are in it, the
    # distribution's units of the cluster's services disabled; the VM has no route out.
    echo "provision: $name: the box holds every package"
else
    # A public box: the packages of a namespace lab node of this release (the [cluster] and
    # [stack] sections of its list, and the OpenStack APIs' from their records), from the
    # network.
    . /etc/os-release
    list="$source/lib/stackha/lab/releases/$VERSION_CODENAME.list"
    [ -f "$list" ] || { echo "provision: no package list for Debian $VERSION_CODENAME ($list)" >&2; exit 1; }
    # shellcheck disable=SC2046 # one word per package
    "$source/scripts/install-debian-packages" $(awk '/^\[/ { section = $0; next }
        (section == "[cluster]" || section == "[stack]") && NF && !/^#/' "$list") \
        $(PYTHONPATH="$source/lib" python3 -m stackha.services.api_catalog)
    # The cluster starts these; the distribution must not, at boot or now.
    for service in mariadb rabbitmq-server haproxy; do
        systemctl disable --now "$service" 2>/dev/null || true
    done
    # stackha as an operator installs it: the Debian packages the host built (make deb), with
    # their Depends from the distribution. stackha-lab brings 'stackha lab corosync-conf|hosts'.
    set -- "$source"/build/deb/stackha_*_all.deb "$source"/build/deb/stackha-lab_*_all.deb
    for deb in "$@"; do
        [ -f "$deb" ] || { echo "provision: $deb: no such package; run 'make deb' on the host" >&2; exit 1; }
    done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
fi
stackha=/usr/bin/stackha

"$stackha" lab corosync-conf --nodes "$nodes" --subnet "$subnet" > /etc/corosync/corosync.conf
# where that corosync.conf logs, as a namespace node has it (stackha.lab.node)
install -d -m 0755 /var/log/cluster
install -m 0400 -o root -g root "$shared/authkey" /etc/corosync/authkey
# Name every node in /etc/hosts (replacing what an earlier run added).
sed -i '/# stackha-lab$/d' /etc/hosts
"$stackha" lab hosts --nodes "$nodes" --subnet "$subnet" \
    | sed 's/$/ # stackha-lab/' >> /etc/hosts
hostnamectl set-hostname "$name"

systemctl enable --now corosync pacemaker
echo "$name provisioned: $(crm_mon --one-shot 2>/dev/null | grep -E 'Online|DC' || echo 'cluster starting')"
