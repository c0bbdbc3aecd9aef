"""stackha status: crm_mon's XML and the CIB, judged per OpenStack concept."""

# The fixtures keep crm_mon's and cibadmin's lines as they print them, however long.
# ruff: noqa: E501

import io
import json
from pathlib import Path

import pytest
from fakes import FakeRunner
from stackha import cli
from stackha.openstack_status import (
    BrokerView,
    StatusError,
    as_json,
    gather,
    kind_of,
    parse_configuration,
    render_text,
    summarise,
)
from stackha.pacemaker import crm_mon
from stackha.runner import CommandNotFound

CRM_MON = [
    "/usr/sbin/crm_mon",
    "--one-shot",
    "--inactive",
    "--output-as=xml",
    "--show-node-attributes",
    "--fence-history=3",
]
CIBADMIN = ["/usr/sbin/cibadmin", "--query", "--scope", "configuration"]
RABBITMQCTL = ["/usr/sbin/rabbitmqctl", "-n", "rabbit@node1", "-q", "cluster_status"]
RABBITMQCTL += ["--formatter", "json"]
UUID = "1f2e3d4c-5b6a-11ee-9a8b-0242ac120002"
API_SCHEMA = Path("/usr/share/pacemaker/api/api-result-2.25.rng")
CIB_SCHEMA = Path("/usr/share/pacemaker/pacemaker-3.9.rng")

# What Pacemaker 2.1.5 prints for `crm_mon --one-shot --inactive --output-as=xml
# --show-node-attributes --fence-history=3` on a healthy-looking three-node stackha cluster
# where nova-api could not start on node3 and RabbitMQ on node3 found itself in a minority
# (node_history trimmed to node3's failures).
CRM_MON_STACKHA = """\
<pacemaker-result api-version="2.25" request="crm_mon --one-shot --inactive --output-as=xml --show-node-attributes --fence-history=3">
  <summary>
    <stack type="corosync"/>
    <current_dc present="true" version="2.1.5-a3f44794f94" name="node2" id="2" with_quorum="true" mixed_version="false"/>
    <last_update time="Tue Mar  5 10:12:01 2024"/>
    <last_change time="Tue Mar  5 10:02:44 2024" user="root" client="cibadmin" origin="node1"/>
    <nodes_configured number="3"/>
    <resources_configured number="21" disabled="0" blocked="0"/>
    <cluster_options stonith-enabled="true" symmetric-cluster="true" no-quorum-policy="stop" maintenance-mode="false" stop-all-resources="false" stonith-timeout-ms="60000" priority-fencing-delay-ms="0"/>
  </summary>
  <nodes>
    <node name="node1" id="1" online="true" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="false" health="green" feature_set="3.16.2" shutdown="false" expected_up="true" is_dc="false" resources_running="6" type="member"/>
    <node name="node2" id="2" online="true" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="false" health="green" feature_set="3.16.2" shutdown="false" expected_up="true" is_dc="true" resources_running="8" type="member"/>
    <node name="node3" id="3" online="true" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="false" health="green" feature_set="3.16.2" shutdown="false" expected_up="true" is_dc="false" resources_running="5" type="member"/>
  </nodes>
  <resources>
    <resource id="vip-public" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="node2" id="2" cached="true"/>
    </resource>
    <resource id="vip-internal" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="node2" id="2" cached="true"/>
    </resource>
    <clone id="haproxy-clone" multi_state="false" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="haproxy" resource_agent="ocf:stackha:haproxy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node2" id="2" cached="true"/>
      </resource>
      <resource id="haproxy" resource_agent="ocf:stackha:haproxy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node1" id="1" cached="true"/>
      </resource>
      <resource id="haproxy" resource_agent="ocf:stackha:haproxy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node3" id="3" cached="true"/>
      </resource>
    </clone>
    <clone id="galera-clone" multi_state="true" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="galera" resource_agent="ocf:stackha:galera" role="Promoted" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node2" id="2" cached="true"/>
      </resource>
      <resource id="galera" resource_agent="ocf:stackha:galera" role="Promoted" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node1" id="1" cached="true"/>
      </resource>
      <resource id="galera" resource_agent="ocf:stackha:galera" role="Unpromoted" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node3" id="3" cached="true"/>
      </resource>
    </clone>
    <clone id="rabbitmq-clone" multi_state="false" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="rabbitmq" resource_agent="ocf:stackha:rabbitmq" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node1" id="1" cached="true"/>
      </resource>
      <resource id="rabbitmq" resource_agent="ocf:stackha:rabbitmq" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node2" id="2" cached="true"/>
      </resource>
      <resource id="rabbitmq" resource_agent="ocf:stackha:rabbitmq" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    </clone>
    <clone id="keystone-clone" multi_state="false" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="keystone" resource_agent="ocf:stackha:keystone" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node1" id="1" cached="true"/>
      </resource>
      <resource id="keystone" resource_agent="ocf:stackha:keystone" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node2" id="2" cached="true"/>
      </resource>
      <resource id="keystone" resource_agent="ocf:stackha:keystone" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node3" id="3" cached="true"/>
      </resource>
    </clone>
    <clone id="nova-api-clone" multi_state="false" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="nova-api" resource_agent="ocf:stackha:nova-api" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node1" id="1" cached="true"/>
      </resource>
      <resource id="nova-api" resource_agent="ocf:stackha:nova-api" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node2" id="2" cached="true"/>
      </resource>
      <resource id="nova-api" resource_agent="ocf:stackha:nova-api" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    </clone>
    <resource id="fence-ipmi-node1" resource_agent="stonith:fence_stackha_ipmi" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="node2" id="2" cached="true"/>
    </resource>
    <resource id="fence-ipmi-node2" resource_agent="stonith:fence_stackha_ipmi" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="node3" id="3" cached="true"/>
    </resource>
    <resource id="fence-ipmi-node3" resource_agent="stonith:fence_stackha_ipmi" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="node3" id="3" cached="true"/>
    </resource>
    <resource id="fence-pdu-rack1" resource_agent="stonith:fence_stackha_pdu" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="node1" id="1" cached="true"/>
    </resource>
  </resources>
  <node_attributes>
    <node name="node1">
      <attribute name="galera-primary" value="1f2e3d4c-5b6a-11ee-9a8b-0242ac120002"/>
      <attribute name="master-galera" value="100"/>
      <attribute name="rabbitmq-node" value="rabbit@node1"/>
    </node>
    <node name="node2">
      <attribute name="galera-primary" value="1f2e3d4c-5b6a-11ee-9a8b-0242ac120002"/>
      <attribute name="master-galera" value="100"/>
      <attribute name="rabbitmq-node" value="rabbit@node2"/>
    </node>
    <node name="node3">
      <attribute name="galera-position" value="1f2e3d4c-5b6a-11ee-9a8b-0242ac120002:1234"/>
      <attribute name="galera-safe-to-bootstrap" value="0"/>
      <attribute name="master-galera" value="100"/>
    </node>
  </node_attributes>
  <node_history>
    <node name="node3">
      <resource_history id="nova-api" orphan="false" migration-threshold="1000000" fail-count="INFINITY" last-failure="Tue Mar  5 10:05:12 2024">
        <operation_history call="23" task="start" rc="5" rc_text="not installed" last-rc-change="Tue Mar  5 10:05:12 2024" exec-time="43ms" queue-time="0ms"/>
        <operation_history call="24" task="stop" rc="0" rc_text="ok" last-rc-change="Tue Mar  5 10:05:13 2024" exec-time="12ms" queue-time="0ms"/>
      </resource_history>
      <resource_history id="rabbitmq" orphan="false" migration-threshold="1" fail-count="1" last-failure="Tue Mar  5 10:07:30 2024">
        <operation_history call="41" task="monitor" rc="1" rc_text="error" interval="10000ms" last-rc-change="Tue Mar  5 10:07:30 2024" exec-time="212ms" queue-time="0ms"/>
        <operation_history call="44" task="stop" rc="0" rc_text="ok" last-rc-change="Tue Mar  5 10:07:41 2024" exec-time="10840ms" queue-time="0ms"/>
      </resource_history>
    </node>
  </node_history>
  <failures>
    <failure op_key="nova-api_start_0" node="node3" exitstatus="not installed" exitreason="/usr/bin/nova-api not found" exitcode="5" call="23" status="complete" last-rc-change="2024-03-05 10:05:12 +01:00" queued="0" exec="43" interval="0" task="start"/>
    <failure op_key="rabbitmq_monitor_10000" node="node3" exitstatus="error" exitreason="rabbit@node3 is in a minority: 1 of 3 members running" exitcode="1" call="41" status="complete" last-rc-change="2024-03-05 10:07:30 +01:00" queued="0" exec="212" interval="10000" task="monitor"/>
  </failures>
  <fence_history>
    <fence_event action="reboot" target="node3" client="pacemaker-controld.1342" origin="node2" status="success" delegate="node1" completed="2024-03-05 09:58:41 +01:00"/>
    <fence_event action="reboot" target="node3" client="pacemaker-controld.1342" origin="node2" status="failed" exit-reason="Fencing did not complete within 60s" delegate="node2" completed="2024-03-05 09:57:36 +01:00"/>
  </fence_history>
  <status code="0" message="OK"/>
</pacemaker-result>
"""

# `cibadmin --query --scope configuration` of that cluster, as pcs wrote it.
CIB_STACKHA = """\
<configuration>
  <crm_config>
    <cluster_property_set id="cib-bootstrap-options">
      <nvpair id="cib-bootstrap-options-have-watchdog" name="have-watchdog" value="false"/>
      <nvpair id="cib-bootstrap-options-dc-version" name="dc-version" value="2.1.5-a3f44794f94"/>
      <nvpair id="cib-bootstrap-options-cluster-infrastructure" name="cluster-infrastructure" value="corosync"/>
      <nvpair id="cib-bootstrap-options-cluster-name" name="cluster-name" value="openstack"/>
      <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="true"/>
    </cluster_property_set>
  </crm_config>
  <nodes>
    <node id="1" uname="node1"/>
    <node id="2" uname="node2"/>
    <node id="3" uname="node3"/>
  </nodes>
  <resources>
    <primitive class="ocf" id="vip-public" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="vip-public-instance_attributes">
        <nvpair id="vip-public-instance_attributes-cidr_netmask" name="cidr_netmask" value="24"/>
        <nvpair id="vip-public-instance_attributes-ip" name="ip" value="192.168.213.100"/>
      </instance_attributes>
      <operations>
        <op id="vip-public-monitor-interval-10s" interval="10s" name="monitor" timeout="20s"/>
        <op id="vip-public-start-interval-0s" interval="0s" name="start" timeout="20s"/>
        <op id="vip-public-stop-interval-0s" interval="0s" name="stop" timeout="20s"/>
      </operations>
    </primitive>
    <primitive class="ocf" id="vip-internal" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="vip-internal-instance_attributes">
        <nvpair id="vip-internal-instance_attributes-cidr_netmask" name="cidr_netmask" value="24"/>
        <nvpair id="vip-internal-instance_attributes-ip" name="ip" value="10.20.0.100"/>
      </instance_attributes>
      <operations>
        <op id="vip-internal-monitor-interval-10s" interval="10s" name="monitor" timeout="20s"/>
      </operations>
    </primitive>
    <clone id="haproxy-clone">
      <primitive class="ocf" id="haproxy" provider="stackha" type="haproxy">
        <operations>
          <op id="haproxy-monitor-interval-10s" interval="10s" name="monitor" timeout="20s"/>
        </operations>
      </primitive>
    </clone>
    <clone id="galera-clone">
      <primitive class="ocf" id="galera" provider="stackha" type="galera">
        <instance_attributes id="galera-instance_attributes">
          <nvpair id="galera-instance_attributes-wsrep_cluster_address" name="wsrep_cluster_address" value="gcomm://node1,node2,node3"/>
        </instance_attributes>
        <operations>
          <op id="galera-monitor-interval-20s" interval="20s" name="monitor" role="Unpromoted" timeout="30s"/>
          <op id="galera-monitor-interval-10s" interval="10s" name="monitor" role="Promoted" timeout="30s"/>
          <op id="galera-promote-interval-0s" interval="0s" name="promote" timeout="300s"/>
        </operations>
      </primitive>
      <meta_attributes id="galera-clone-meta_attributes">
        <nvpair id="galera-clone-meta_attributes-notify" name="notify" value="true"/>
        <nvpair id="galera-clone-meta_attributes-promotable" name="promotable" value="true"/>
        <nvpair id="galera-clone-meta_attributes-promoted-max" name="promoted-max" value="3"/>
      </meta_attributes>
    </clone>
    <clone id="rabbitmq-clone">
      <primitive class="ocf" id="rabbitmq" provider="stackha" type="rabbitmq">
        <operations>
          <op id="rabbitmq-monitor-interval-10s" interval="10s" name="monitor" timeout="40s"/>
        </operations>
      </primitive>
      <meta_attributes id="rabbitmq-clone-meta_attributes">
        <nvpair id="rabbitmq-clone-meta_attributes-notify" name="notify" value="true"/>
      </meta_attributes>
    </clone>
    <clone id="keystone-clone">
      <primitive class="ocf" id="keystone" provider="stackha" type="keystone">
        <operations>
          <op id="keystone-monitor-interval-10s" interval="10s" name="monitor" timeout="30s"/>
        </operations>
      </primitive>
    </clone>
    <clone id="nova-api-clone">
      <primitive class="ocf" id="nova-api" provider="stackha" type="nova-api">
        <operations>
          <op id="nova-api-monitor-interval-10s" interval="10s" name="monitor" timeout="30s"/>
        </operations>
      </primitive>
    </clone>
    <primitive class="stonith" id="fence-ipmi-node1" type="fence_stackha_ipmi">
      <instance_attributes id="fence-ipmi-node1-instance_attributes">
        <nvpair id="fence-ipmi-node1-instance_attributes-ip" name="ip" value="10.0.0.101"/>
        <nvpair id="fence-ipmi-node1-instance_attributes-password_script" name="password_script" value="/usr/local/bin/bmc-password node1"/>
        <nvpair id="fence-ipmi-node1-instance_attributes-pcmk_host_list" name="pcmk_host_list" value="node1"/>
        <nvpair id="fence-ipmi-node1-instance_attributes-username" name="username" value="admin"/>
      </instance_attributes>
      <operations>
        <op id="fence-ipmi-node1-monitor-interval-60s" interval="60s" name="monitor"/>
      </operations>
    </primitive>
    <primitive class="stonith" id="fence-ipmi-node2" type="fence_stackha_ipmi">
      <instance_attributes id="fence-ipmi-node2-instance_attributes">
        <nvpair id="fence-ipmi-node2-instance_attributes-ip" name="ip" value="10.0.0.102"/>
        <nvpair id="fence-ipmi-node2-instance_attributes-password_script" name="password_script" value="/usr/local/bin/bmc-password node2"/>
        <nvpair id="fence-ipmi-node2-instance_attributes-pcmk_host_list" name="pcmk_host_list" value="node2"/>
        <nvpair id="fence-ipmi-node2-instance_attributes-username" name="username" value="admin"/>
      </instance_attributes>
      <operations>
        <op id="fence-ipmi-node2-monitor-interval-60s" interval="60s" name="monitor"/>
      </operations>
    </primitive>
    <primitive class="stonith" id="fence-ipmi-node3" type="fence_stackha_ipmi">
      <instance_attributes id="fence-ipmi-node3-instance_attributes">
        <nvpair id="fence-ipmi-node3-instance_attributes-ip" name="ip" value="10.0.0.103"/>
        <nvpair id="fence-ipmi-node3-instance_attributes-password_script" name="password_script" value="/usr/local/bin/bmc-password node3"/>
        <nvpair id="fence-ipmi-node3-instance_attributes-pcmk_host_list" name="pcmk_host_list" value="node3"/>
        <nvpair id="fence-ipmi-node3-instance_attributes-username" name="username" value="admin"/>
      </instance_attributes>
      <operations>
        <op id="fence-ipmi-node3-monitor-interval-60s" interval="60s" name="monitor"/>
      </operations>
    </primitive>
    <primitive class="stonith" id="fence-pdu-rack1" type="fence_stackha_pdu">
      <instance_attributes id="fence-pdu-rack1-instance_attributes">
        <nvpair id="fence-pdu-rack1-instance_attributes-ip" name="ip" value="10.0.0.99"/>
        <nvpair id="fence-pdu-rack1-instance_attributes-pcmk_host_map" name="pcmk_host_map" value="node1:1;node2:2;node3:3"/>
        <nvpair id="fence-pdu-rack1-instance_attributes-ssh" name="ssh" value="1"/>
        <nvpair id="fence-pdu-rack1-instance_attributes-username" name="username" value="apc"/>
      </instance_attributes>
      <operations>
        <op id="fence-pdu-rack1-monitor-interval-60s" interval="60s" name="monitor"/>
      </operations>
    </primitive>
  </resources>
  <constraints>
    <rsc_location id="location-fence-ipmi-node1-node1--INFINITY" node="node1" rsc="fence-ipmi-node1" score="-INFINITY"/>
    <rsc_location id="location-fence-ipmi-node2-node2--INFINITY" node="node2" rsc="fence-ipmi-node2" score="-INFINITY"/>
    <rsc_colocation id="colocation-vip-public-haproxy-clone-INFINITY" rsc="vip-public" score="INFINITY" with-rsc="haproxy-clone"/>
  </constraints>
  <fencing-topology>
    <fencing-level devices="fence-ipmi-node1" id="fl-node1-1" index="1" target="node1"/>
    <fencing-level devices="fence-pdu-rack1" id="fl-node1-2" index="2" target="node1"/>
    <fencing-level devices="fence-ipmi-node2" id="fl-node2-1" index="1" target="node2"/>
    <fencing-level devices="fence-pdu-rack1" id="fl-node2-2" index="2" target="node2"/>
    <fencing-level devices="fence-ipmi-node3" id="fl-node3-1" index="1" target="node3"/>
    <fencing-level devices="fence-pdu-rack1" id="fl-node3-2" index="2" target="node3"/>
  </fencing-topology>
</configuration>
"""

# A cluster built from resource-agents' and systemd agents, with TripleO's names: one node
# left (no quorum), one offline in standby, one unclean, keystone's start timed out.
CRM_MON_TRIPLEO = """\
<pacemaker-result api-version="2.25" request="crm_mon --one-shot --inactive --output-as=xml --show-node-attributes --fence-history=3">
  <summary>
    <stack type="corosync"/>
    <current_dc present="true" version="2.1.5-a3f44794f94" name="controller-0" id="1" with_quorum="false" mixed_version="false"/>
    <last_update time="Wed Mar  6 08:30:12 2024"/>
    <last_change time="Wed Mar  6 08:01:09 2024" user="hacluster" client="crmd" origin="controller-0"/>
    <nodes_configured number="3"/>
    <resources_configured number="11" disabled="0" blocked="0"/>
    <cluster_options stonith-enabled="true" symmetric-cluster="true" no-quorum-policy="stop" maintenance-mode="false" stop-all-resources="false" stonith-timeout-ms="60000" priority-fencing-delay-ms="0"/>
  </summary>
  <nodes>
    <node name="controller-0" id="1" online="true" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="false" health="green" feature_set="3.16.2" shutdown="false" expected_up="true" is_dc="true" resources_running="0" type="member"/>
    <node name="controller-1" id="2" online="false" standby="true" standby_onfail="false" maintenance="false" pending="false" unclean="false" health="green" shutdown="false" expected_up="false" is_dc="false" resources_running="0" type="member"/>
    <node name="controller-2" id="3" online="false" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="true" health="green" shutdown="false" expected_up="true" is_dc="false" resources_running="0" type="member"/>
  </nodes>
  <resources>
    <resource id="ip-172.17.1.10" resource_agent="ocf:heartbeat:IPaddr2" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    <clone id="galera-master" multi_state="true" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="galera" resource_agent="ocf:heartbeat:galera" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
      <resource id="galera" resource_agent="ocf:heartbeat:galera" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
      <resource id="galera" resource_agent="ocf:heartbeat:galera" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    </clone>
    <clone id="rabbitmq-clone" multi_state="false" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="rabbitmq" resource_agent="ocf:heartbeat:rabbitmq-cluster" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
      <resource id="rabbitmq" resource_agent="ocf:heartbeat:rabbitmq-cluster" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
      <resource id="rabbitmq" resource_agent="ocf:heartbeat:rabbitmq-cluster" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    </clone>
    <clone id="openstack-keystone-clone" multi_state="false" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="openstack-keystone" resource_agent="systemd:openstack-keystone" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
      <resource id="openstack-keystone" resource_agent="systemd:openstack-keystone" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
      <resource id="openstack-keystone" resource_agent="systemd:openstack-keystone" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    </clone>
    <resource id="stonith-fence_ipmilan-525400aaaaaa" resource_agent="stonith:fence_ipmilan" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
  </resources>
  <node_attributes>
    <node name="controller-0">
      <attribute name="galera-last-committed" value="4711"/>
      <attribute name="galera-safe-to-bootstrap" value="1"/>
    </node>
  </node_attributes>
  <failures>
    <failure op_key="openstack-keystone_start_0" node="controller-0" exitstatus="error" exitreason="none" exitcode="1" call="31" status="Timed Out" last-rc-change="2024-03-06 08:02:10 +01:00" queued="0" exec="200003" interval="0" task="start"/>
  </failures>
  <fence_history>
    <fence_event action="reboot" target="controller-2" client="pacemaker-controld.2211" origin="controller-0" status="pending" extended-status="1"/>
  </fence_history>
  <status code="0" message="OK"/>
</pacemaker-result>
"""

CIB_TRIPLEO = """\
<configuration>
  <crm_config>
    <cluster_property_set id="cib-bootstrap-options">
      <nvpair id="cib-bootstrap-options-have-watchdog" name="have-watchdog" value="false"/>
      <nvpair id="cib-bootstrap-options-dc-version" name="dc-version" value="2.1.5-a3f44794f94"/>
      <nvpair id="cib-bootstrap-options-cluster-infrastructure" name="cluster-infrastructure" value="corosync"/>
      <nvpair id="cib-bootstrap-options-cluster-name" name="cluster-name" value="tripleo_cluster"/>
    </cluster_property_set>
  </crm_config>
  <nodes>
    <node id="1" uname="controller-0"/>
    <node id="2" uname="controller-1">
      <instance_attributes id="nodes-2">
        <nvpair id="nodes-2-standby" name="standby" value="on"/>
      </instance_attributes>
    </node>
    <node id="3" uname="controller-2"/>
  </nodes>
  <resources>
    <primitive class="ocf" id="ip-172.17.1.10" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="ip-172.17.1.10-instance_attributes">
        <nvpair id="ip-172.17.1.10-instance_attributes-cidr_netmask" name="cidr_netmask" value="32"/>
        <nvpair id="ip-172.17.1.10-instance_attributes-ip" name="ip" value="172.17.1.10"/>
      </instance_attributes>
      <operations>
        <op id="ip-172.17.1.10-monitor-interval-10s" interval="10s" name="monitor" timeout="20s"/>
      </operations>
    </primitive>
    <clone id="galera-master">
      <primitive class="ocf" id="galera" provider="heartbeat" type="galera">
        <instance_attributes id="galera-instance_attributes">
          <nvpair id="galera-instance_attributes-wsrep_cluster_address" name="wsrep_cluster_address" value="gcomm://controller-0,controller-1,controller-2"/>
        </instance_attributes>
      </primitive>
      <meta_attributes id="galera-master-meta_attributes">
        <nvpair id="galera-master-meta_attributes-promotable" name="promotable" value="true"/>
      </meta_attributes>
    </clone>
    <clone id="rabbitmq-clone">
      <primitive class="ocf" id="rabbitmq" provider="heartbeat" type="rabbitmq-cluster">
        <instance_attributes id="rabbitmq-instance_attributes">
          <nvpair id="rabbitmq-instance_attributes-set_policy" name="set_policy" value="ha-all ^(?!amq\\.).* {&quot;ha-mode&quot;:&quot;all&quot;}"/>
        </instance_attributes>
      </primitive>
    </clone>
    <clone id="openstack-keystone-clone">
      <primitive class="systemd" id="openstack-keystone" type="openstack-keystone">
        <operations>
          <op id="openstack-keystone-start-interval-0s" interval="0s" name="start" timeout="200s"/>
        </operations>
      </primitive>
    </clone>
    <primitive class="stonith" id="stonith-fence_ipmilan-525400aaaaaa" type="fence_ipmilan">
      <instance_attributes id="stonith-fence_ipmilan-525400aaaaaa-instance_attributes">
        <nvpair id="stonith-fence_ipmilan-525400aaaaaa-instance_attributes-ipaddr" name="ipaddr" value="192.168.24.50"/>
        <nvpair id="stonith-fence_ipmilan-525400aaaaaa-instance_attributes-pcmk_host_list" name="pcmk_host_list" value="controller-0"/>
      </instance_attributes>
    </primitive>
  </resources>
  <constraints/>
  <fencing-topology>
    <fencing-level devices="stonith-fence_ipmilan-525400aaaaaa" id="fl-controller-0-1" index="1" target-pattern="controller-.*"/>
    <fencing-level devices="stonith-fence_ipmilan-525400aaaaaa" id="fl-rack-1" index="1" target-attribute="rack" target-value="r1"/>
  </fencing-topology>
</configuration>
"""

# The stackha cluster's configuration with references, as a hand-edited CIB may have them: a
# second PDU feed (its own address) takes the first feed's outlet map and login by id-ref, and
# keystone-clone nova-api-clone's meta attributes (clone-max=2). crm_mon then shows the second
# feed on node2 and keystone on node1 and node2 only: all the instances clone-max allows.
CIB_STACKHA_ID_REFS = (
    CIB_STACKHA.replace(
        '    <clone id="keystone-clone">\n',
        '    <clone id="keystone-clone">\n'
        '      <meta_attributes id-ref="nova-api-clone-meta_attributes"/>\n',
    )
    .replace(
        '    <clone id="nova-api-clone">\n',
        '    <clone id="nova-api-clone">\n'
        '      <meta_attributes id="nova-api-clone-meta_attributes">\n'
        '        <nvpair id="nova-api-clone-meta_attributes-clone-max" name="clone-max" value="2"/>\n'
        "      </meta_attributes>\n",
    )
    .replace(
        '    <primitive class="stonith" id="fence-pdu-rack1" type="fence_stackha_pdu">\n',
        '    <primitive class="stonith" id="fence-pdu-rack1-b" type="fence_stackha_pdu">\n'
        '      <instance_attributes id="fence-pdu-rack1-b-instance_attributes">\n'
        '        <nvpair id="fence-pdu-rack1-b-instance_attributes-ip" name="ip" value="10.0.0.98"/>\n'
        "      </instance_attributes>\n"
        '      <instance_attributes id-ref="fence-pdu-rack1-instance_attributes"/>\n'
        "    </primitive>\n"
        '    <primitive class="stonith" id="fence-pdu-rack1" type="fence_stackha_pdu">\n',
    )
)
CRM_MON_STACKHA_ID_REFS = CRM_MON_STACKHA.replace(
    """      <resource id="keystone" resource_agent="ocf:stackha:keystone" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="node3" id="3" cached="true"/>
      </resource>
""",
    """      <resource id="keystone" resource_agent="ocf:stackha:keystone" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
""",
).replace(
    "  </resources>\n  <node_attributes>",
    """    <resource id="fence-pdu-rack1-b" resource_agent="stonith:fence_stackha_pdu" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="node2" id="2" cached="true"/>
    </resource>
  </resources>
  <node_attributes>""",
)

# The TripleO cluster's configuration with constraints on resource sets: keystone's set, named
# in an order after Galera's promotion, is kept off controller-2 by a location constraint that
# refers to it (id-ref); Galera is kept off controller-1; RabbitMQ is disabled.
CIB_TRIPLEO_SETS = CIB_TRIPLEO.replace(
    "  <constraints/>\n",
    """  <constraints>
    <rsc_order id="galera-then-apis" kind="Mandatory">
      <resource_set id="galera-set" action="promote">
        <resource_ref id="galera-master"/>
      </resource_set>
      <resource_set id="api-set" action="start">
        <resource_ref id="openstack-keystone-clone"/>
      </resource_set>
    </rsc_order>
    <rsc_location id="apis-avoid-controller-2" node="controller-2" score="-INFINITY">
      <resource_set id-ref="api-set"/>
    </rsc_location>
    <rsc_location id="galera-avoids-controller-1" rsc="galera-master" node="controller-1" score="-INFINITY"/>
  </constraints>
""",
).replace(
    '    <clone id="rabbitmq-clone">\n',
    """    <clone id="rabbitmq-clone">
      <meta_attributes id="rabbitmq-clone-meta_attributes">
        <nvpair id="rabbitmq-clone-meta_attributes-target-role" name="target-role" value="Stopped"/>
      </meta_attributes>
""",
)

# crm_mon when Pacemaker does not run on this node: the reason is in the XML, not on stderr.
CRM_MON_NOT_CONNECTED = """\
<pacemaker-result api-version="2.25" request="crm_mon --one-shot --inactive --output-as=xml --show-node-attributes --fence-history=3">
  <status code="102" message="Not connected">
    <errors>
      <error>crm_mon: Error: cluster is not available on this node</error>
    </errors>
  </status>
</pacemaker-result>
"""


# What stackha status prints for them.
TEXT_STACKHA = """\
cluster openstack: DC node2, quorate; online node1 node2 node3
VIPs
  vip-public    192.168.213.100  on node2
  vip-internal  10.20.0.100      on node2
APIs
  keystone      node1 node2 node3
  nova-api      node1 node2  stopped on node3 (failed: start: /usr/bin/nova-api not found)
Other services
  haproxy       node1 node2 node3
Galera (galera-clone)  Primary Component: node1 node2 (uuid 1f2e3d4c...)
  node1  Promoted    position -                 safe_to_bootstrap -  score 100
  node2  Promoted    position -                 safe_to_bootstrap -  score 100
  node3  Unpromoted  position 1f2e3d4c...:1234  safe_to_bootstrap 0  score 100
RabbitMQ (rabbitmq-clone)
  members      node1 (rabbit@node1)  node2 (rabbit@node2)
  stopped on   node3 (failed)
  partitions   node3: rabbit@node3 is in a minority: 1 of 3 members running
  rabbitmqctl  on node1: running rabbit@node1 rabbit@node2; partitions: none
Fencing
  fence-ipmi-node1  fence_stackha_ipmi  on node2  fences node1
  fence-ipmi-node2  fence_stackha_ipmi  on node3  fences node2
  fence-ipmi-node3  fence_stackha_ipmi  on node3  fences node3
  fence-pdu-rack1   fence_stackha_pdu   on node1  fences node1 node2 node3
  WARNING fence-ipmi-node3 runs on node3, which it fences (pcs constraint location fence-ipmi-node3 avoids node3)
  levels  node1: 1 fence-ipmi-node1, 2 fence-pdu-rack1
          node2: 1 fence-ipmi-node2, 2 fence-pdu-rack1
          node3: 1 fence-ipmi-node3, 2 fence-pdu-rack1
  history
    2024-03-05 09:58:41 +01:00  reboot  node3  success  delegate node1  origin node2
    2024-03-05 09:57:36 +01:00  reboot  node3  failed   delegate node2  origin node2  Fencing did not complete within 60s
Failed actions
  nova-api  start          on node3  2024-03-05 10:05:12 +01:00  not installed (5): /usr/bin/nova-api not found
  rabbitmq  monitor (10s)  on node3  2024-03-05 10:07:30 +01:00  error (1): rabbit@node3 is in a minority: 1 of 3 members running
"""

TEXT_TRIPLEO = """\
cluster tripleo_cluster: DC controller-0, NO QUORUM; online controller-0; OFFLINE controller-1; UNCLEAN controller-2
VIPs
  ip-172.17.1.10      172.17.1.10  stopped
APIs
  openstack-keystone  -  stopped on controller-0 (failed: start: Timed Out), controller-1, controller-2
Galera (galera-master)  no Primary Component
  controller-0  Stopped  position 4711  safe_to_bootstrap 1  score -
  controller-1  Stopped  position -     safe_to_bootstrap -  score -  (node OFFLINE)
  controller-2  Stopped  position -     safe_to_bootstrap -  score -  (node UNCLEAN)
RabbitMQ (rabbitmq-clone)
  members     none
  stopped on  controller-0, controller-1, controller-2
  partitions  none reported by Pacemaker
Fencing
  stonith-fence_ipmilan-525400aaaaaa  fence_ipmilan  stopped  fences controller-0
  WARNING no fence device fences controller-1 controller-2
  levels  controller-.*: 1 stonith-fence_ipmilan-525400aaaaaa
          rack=r1: 1 stonith-fence_ipmilan-525400aaaaaa
  history
    in progress  reboot  controller-2  pending  delegate -  origin controller-0
Failed actions
  openstack-keystone  start  on controller-0  2024-03-06 08:02:10 +01:00  error (1): Timed Out
"""


def stackha_cluster(broker_view=None, crm_mon_xml=CRM_MON_STACKHA, cib_xml=CIB_STACKHA):
    return summarise(crm_mon.parse_status(crm_mon_xml), parse_configuration(cib_xml), broker_view)


def tripleo_cluster():
    return summarise(crm_mon.parse_status(CRM_MON_TRIPLEO), parse_configuration(CIB_TRIPLEO))


def cluster_status_json(running=("rabbit@node1", "rabbit@node2"), partitions=None):
    """What `rabbitmqctl -q cluster_status --formatter json` prints (RabbitMQ 3.10+)."""
    members = ["rabbit@node1", "rabbit@node2", "rabbit@node3"]
    return json.dumps(
        {
            "alarms": [],
            "cluster_name": "rabbit@node1",
            "disk_nodes": members,
            "running_nodes": list(running),
            "partitions": partitions or {},
            "versions": {m: {"rabbitmq_version": "3.10.8"} for m in running},
        }
    )


# -- the fixtures are what Pacemaker prints ------------------------------------------------


@pytest.mark.skipif(not API_SCHEMA.exists(), reason="Pacemaker 2.1.5's schemas are not here")
@pytest.mark.parametrize(
    "xml", [CRM_MON_STACKHA, CRM_MON_TRIPLEO, CRM_MON_NOT_CONNECTED, CRM_MON_STACKHA_ID_REFS]
)
def test_crm_mon_fixtures_are_valid_pacemaker_2_1_5_output(xml):
    """Each crm_mon fixture validates against the API schema Pacemaker 2.1.5 ships."""
    from lxml import etree

    schema = etree.RelaxNG(etree.parse(str(API_SCHEMA)))
    assert schema.validate(etree.fromstring(xml.encode())), schema.error_log


@pytest.mark.skipif(not CIB_SCHEMA.exists(), reason="Pacemaker 2.1.5's schemas are not here")
@pytest.mark.parametrize("xml", [CIB_STACKHA, CIB_TRIPLEO, CIB_STACKHA_ID_REFS, CIB_TRIPLEO_SETS])
def test_cib_fixtures_are_valid_configurations(xml):
    """Each configuration, put in a CIB, validates against the CIB schema of Pacemaker 2.1.5."""
    from lxml import etree

    cib = etree.fromstring(
        b'<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0"/>'
    )
    cib.append(etree.fromstring(xml.encode()))
    etree.SubElement(cib, "status")
    schema = etree.RelaxNG(etree.parse(str(CIB_SCHEMA)))
    assert schema.validate(cib), schema.error_log


# -- crm_mon's XML -------------------------------------------------------------------------


def test_parse_status_reads_node_attributes_failures_and_fencing_history():
    """The sections crm_mon adds with -A and --fence-history are parsed."""
    status = crm_mon.parse_status(CRM_MON_STACKHA)
    assert status.attribute("node3", "galera-position") == f"{UUID}:1234"
    assert status.attribute("node1", "rabbitmq-node") == "rabbit@node1"
    assert status.attribute("node1", "galera-position") is None
    assert status.stonith_enabled is True
    nova, rabbit = status.failures
    assert (nova.resource, nova.operation, nova.node, nova.exit_code) == (
        "nova-api",
        "start",
        "node3",
        5,
    )
    assert nova.exit_reason == "/usr/bin/nova-api not found"
    assert (rabbit.resource, rabbit.interval_ms) == ("rabbitmq", 10000)
    latest, earlier = status.fence_history
    assert (latest.target, latest.action, latest.status, latest.delegate) == (
        "node3",
        "reboot",
        "success",
        "node1",
    )
    assert earlier.exit_reason == "Fencing did not complete within 60s"
    assert status.fence_history_error is None


def test_parse_status_knows_each_instance_clone():
    """Instances carry their clone and whether it is promotable; the old fields stay as they were."""
    status = crm_mon.parse_status(CRM_MON_STACKHA)
    galera = status.instances("galera")
    assert {r.clone for r in galera} == {"galera-clone"}
    assert all(r.promotable for r in galera)
    assert [r.role for r in galera] == ["Promoted", "Promoted", "Unpromoted"]
    (vip,) = status.instances("vip-public")
    assert (vip.clone, vip.nodes, vip.active) == (None, ("node2",), True)
    assert status.dc == "node2" and status.has_quorum
    assert status.online_nodes == ("node1", "node2", "node3")


def test_parse_status_of_the_minimal_xml_older_callers_see():
    """XML without the optional sections parses to empty ones."""
    status = crm_mon.parse_status(
        '<pacemaker-result api-version="2.25" request="crm_mon --output-as=xml">'
        '<summary><current_dc present="true" name="node1" with_quorum="true"/></summary>'
        '<nodes><node name="node1" id="1" online="true" standby="false" unclean="false"/></nodes>'
        "</pacemaker-result>"
    )
    assert status.failures == () and status.fence_history == () and status.resources == ()
    assert status.node_attributes == {} and status.stonith_enabled is None


@pytest.mark.parametrize(
    ("xml", "resource", "operation"),
    [
        ('op_key="vip-public_migrate_to_0" task="migrate_to"', "vip-public", "migrate_to"),
        ('op_key="vip-public_migrate_from_0"', "vip-public", "migrate_from"),
        ('op_key="dummy:2_monitor_10000"', "dummy", "monitor"),
        ('op_key="my_rsc_stop_0" task="stop"', "my_rsc", "stop"),
    ],
)
def test_a_failure_names_its_resource_and_operation(xml, resource, operation):
    """The resource comes out of the op key even with underscores or a clone instance number."""
    status = crm_mon.parse_status(
        f'<pacemaker-result api-version="2.25" request="crm_mon"><failures><failure {xml} '
        'node="n1" exitstatus="error" exitreason="none" exitcode="1" call="3" status="complete"/>'
        "</failures></pacemaker-result>"
    )
    (failure,) = status.failures
    assert (failure.resource, failure.operation, failure.exit_reason) == (resource, operation, "")


def test_crm_mon_failure_says_why_from_its_xml(fake_runner):
    """crm_mon prints why it failed inside its XML; that reason is the error's message."""
    fake_runner.expect(
        CRM_MON,
        returncode=102,
        stdout=CRM_MON_NOT_CONNECTED,
        stderr="error: Could not connect to launcher: Connection refused\n",
    )
    with pytest.raises(Exception, match="cluster is not available on this node"):
        crm_mon.detailed_status(fake_runner)


# -- the CIB -------------------------------------------------------------------------------


def test_parse_configuration_reads_name_parameters_and_levels():
    """The cluster's name, each primitive's parameters and the fencing levels, in order."""
    configuration = parse_configuration(CIB_STACKHA)
    assert configuration.cluster_name == "openstack"
    resources = configuration.resources
    assert resources["vip-public"].params["ip"] == "192.168.213.100"
    assert resources["fence-pdu-rack1"].params["pcmk_host_map"] == "node1:1;node2:2;node3:3"
    assert resources["haproxy"].params == {}
    assert [(lv.target, lv.index, lv.devices) for lv in configuration.fencing_levels[:2]] == [
        ("node1", 1, ("fence-ipmi-node1",)),
        ("node1", 2, ("fence-pdu-rack1",)),
    ]


def test_parse_configuration_reads_pattern_and_attribute_targets():
    """Fencing levels may target a pattern or a node attribute instead of a node."""
    levels = parse_configuration(CIB_TRIPLEO).fencing_levels
    assert [(lv.target, lv.target_kind) for lv in levels] == [
        ("controller-.*", "pattern"),
        ("rack=r1", "attribute"),
    ]


def test_parse_configuration_refuses_what_is_not_a_configuration():
    """Something else than a <configuration> is an error that says what it got."""
    with pytest.raises(StatusError, match="found <resources>"):
        parse_configuration("<resources/>")
    with pytest.raises(StatusError, match="no XML"):
        parse_configuration("Could not connect to the CIB")


def test_parameters_and_meta_attributes_given_by_id_ref_are_the_referenced_sets():
    """The second PDU feed fences what the first does (its pcmk_host_map by id-ref, its own
    address first), and keystone-clone's clone-max=2 (by id-ref) makes its two instances all
    there should be: not "stopped on node3"."""
    status = stackha_cluster(crm_mon_xml=CRM_MON_STACKHA_ID_REFS, cib_xml=CIB_STACKHA_ID_REFS)
    devices = {d.id: d for d in status.fencing.devices}
    feed_b = devices["fence-pdu-rack1-b"]
    assert (feed_b.targets, feed_b.targets_from, feed_b.running_on) == (
        ("node1", "node2", "node3"),
        "pcmk_host_map",
        ("node2",),
    )
    configuration = parse_configuration(CIB_STACKHA_ID_REFS)
    assert configuration.resources["fence-pdu-rack1-b"].params["ip"] == "10.0.0.98"
    services = {s.resource: s for s in status.services}
    assert (services["keystone"].serving, services["keystone"].stopped_on) == (
        ("node1", "node2"),
        (),
    )
    # nova-api's own set says clone-max=2 too, but it failed on node3: that it still shows.
    assert services["nova-api"].stopped_on == ("node3",)
    assert "  keystone      node1 node2\n" in render_text(status)


def test_stopped_on_is_where_the_constraints_and_target_role_let_a_clone_run():
    """A location constraint on a resource set given by id-ref (the set of an order) keeps
    keystone off controller-2; Galera kept off controller-1 is not listed there; a disabled
    RabbitMQ (target-role=Stopped) is stopped nowhere it should run. A failure still shows."""
    status = summarise(crm_mon.parse_status(CRM_MON_TRIPLEO), parse_configuration(CIB_TRIPLEO_SETS))
    (keystone,) = status.services
    assert keystone.stopped_on == ("controller-0", "controller-1")
    (galera,) = status.galera
    assert [n.node for n in galera.nodes] == ["controller-0", "controller-2"]
    (broker,) = status.rabbitmq
    assert broker.stopped_on == ()


def test_stop_all_resources_leaves_only_failures_as_stopped_on():
    """With stop-all-resources no clone should run anywhere: a failed node is all that shows."""
    cib = CIB_TRIPLEO.replace(
        "    </cluster_property_set>",
        '      <nvpair id="cib-bootstrap-options-stop-all-resources" name="stop-all-resources" '
        'value="true"/>\n    </cluster_property_set>',
    )
    status = summarise(crm_mon.parse_status(CRM_MON_TRIPLEO), parse_configuration(cib))
    assert [(s.resource, s.stopped_on) for s in status.services] == [
        ("openstack-keystone", ("controller-0",))
    ]
    assert [b.stopped_on for b in status.rabbitmq] == [()]


# -- judgement -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        ("ocf:heartbeat:IPaddr2", "vip"),
        ("ocf:stackha:galera", "galera"),
        ("ocf:heartbeat:galera", "galera"),
        ("ocf:heartbeat:rabbitmq-cluster", "rabbitmq"),
        ("ocf:stackha:haproxy", "proxy"),
        ("systemd:haproxy", "proxy"),
        # our provider and systemd run it, but it is no API
        ("ocf:stackha:memcached", "cache"),
        ("systemd:memcached", "cache"),
        ("ocf:stackha:nova-api", "api"),
        ("systemd:openstack-glance-api", "api"),
        ("stonith:fence_ipmilan", "fence"),
        ("ocf:pacemaker:ping", "other"),
    ],
)
def test_resources_are_classified_by_agent(agent, kind):
    """An agent decides what a resource is, whatever its id."""
    assert kind_of(agent) == kind


def test_cluster_summary():
    """Name, DC, quorum and each node under the one state crm_mon would give it."""
    assert stackha_cluster().cluster.name == "openstack"
    cluster = tripleo_cluster().cluster
    assert (cluster.name, cluster.dc, cluster.quorate) == ("tripleo_cluster", "controller-0", False)
    assert cluster.online == ("controller-0",)
    assert cluster.offline == ("controller-1",)  # in standby, but offline first of all
    assert cluster.unclean == ("controller-2",)


def test_vips_have_their_address_and_holder():
    """A VIP's address comes from the CIB, its holder from crm_mon; stopped holds nowhere."""
    vips = stackha_cluster().vips
    assert [(v.id, v.address, v.held_by) for v in vips] == [
        ("vip-public", "192.168.213.100", ("node2",)),
        ("vip-internal", "10.20.0.100", ("node2",)),
    ]
    (stopped,) = tripleo_cluster().vips
    assert (stopped.id, stopped.address, stopped.held_by) == ("ip-172.17.1.10", "172.17.1.10", ())


def test_services_show_where_they_serve_and_where_not():
    """A clone's serving nodes in node order; the others are stopped, failed when recorded."""
    services = {s.resource: s for s in stackha_cluster().services}
    assert services["keystone"].serving == ("node1", "node2", "node3")
    assert services["keystone"].stopped_on == ()
    nova = services["nova-api"]
    assert (nova.kind, nova.serving, nova.stopped_on, nova.failed_on) == (
        "api",
        ("node1", "node2"),
        ("node3",),
        ("node3",),
    )
    assert services["haproxy"].kind == "proxy"
    assert "galera" not in services and "fence-ipmi-node1" not in services


def test_a_systemd_clone_is_an_api():
    """systemd units are APIs too, under the ids TripleO gives them."""
    (keystone,) = tripleo_cluster().services
    assert (keystone.id, keystone.kind, keystone.serving) == ("openstack-keystone-clone", "api", ())
    assert keystone.stopped_on == ("controller-0", "controller-1", "controller-2")
    assert keystone.failed_on == ("controller-0",)


def test_galera_roles_attributes_and_primary_component():
    """Each node's role and published attributes; the Primary Component is who shares a UUID."""
    (galera,) = stackha_cluster().galera
    assert galera.id == "galera-clone"
    node1, _, node3 = galera.nodes
    assert (node1.role, node1.primary, node1.position, node1.promotion_score) == (
        "Promoted",
        UUID,
        None,
        "100",
    )
    assert (node3.role, node3.position, node3.safe_to_bootstrap, node3.primary) == (
        "Unpromoted",
        f"{UUID}:1234",
        False,
        None,
    )
    (component,) = galera.primary_components
    assert (component.uuid, component.nodes) == (UUID, ("node1", "node2"))


def test_galera_primary_components_that_disagree_are_all_shown():
    """Two UUIDs in <rsc>-primary: both components, the larger first."""
    other = "99999999-0000-11ee-9a8b-0242ac120002"
    xml = CRM_MON_STACKHA.replace(
        '<attribute name="galera-position"',
        f'<attribute name="galera-primary" value="{other}"/>\n      <attribute name="galera-position"',
    )
    (galera,) = stackha_cluster(crm_mon_xml=xml).galera
    assert [(c.uuid, c.nodes) for c in galera.primary_components] == [
        (UUID, ("node1", "node2")),
        (other, ("node3",)),
    ]


def test_heartbeat_galera_reports_its_last_committed_seqno():
    """ocf:heartbeat:galera's -last-committed stands in for our -position."""
    (galera,) = tripleo_cluster().galera
    first, second, third = galera.nodes
    assert (first.role, first.position, first.safe_to_bootstrap) == ("Stopped", "4711", True)
    assert (second.position, third.position) == (None, None)  # offline: crm_mon shows nothing
    assert galera.primary_components == ()


def test_rabbitmq_members_and_partition_reports():
    """Members with their Erlang names; a monitor failing on a minority is a partition report."""
    (broker,) = stackha_cluster().rabbitmq
    assert [(m.node, m.erlang_node) for m in broker.members] == [
        ("node1", "rabbit@node1"),
        ("node2", "rabbit@node2"),
    ]
    assert broker.stopped_on == ("node3",)
    assert [(r.node, r.reason) for r in broker.partition_reports] == [
        ("node3", "rabbit@node3 is in a minority: 1 of 3 members running")
    ]
    assert broker.broker_view is None


def test_fence_devices_targets_and_warnings():
    """Targets from pcmk_host_list/map; running on a node it fences warns unless it fences all."""
    devices = {d.id: d for d in stackha_cluster().fencing.devices}
    assert devices["fence-ipmi-node1"].targets == ("node1",)
    assert devices["fence-ipmi-node1"].running_on == ("node2",)
    assert devices["fence-ipmi-node1"].warnings == ()
    assert devices["fence-ipmi-node3"].warnings == (
        "runs on node3, which it fences (pcs constraint location fence-ipmi-node3 avoids node3)",
    )
    pdu = devices["fence-pdu-rack1"]
    assert (pdu.targets, pdu.targets_from, pdu.warnings) == (
        ("node1", "node2", "node3"),
        "pcmk_host_map",
        (),
    )


def test_fencing_warns_of_nodes_no_device_fences():
    """With every device's targets known, a node none of them fences is named."""
    fencing = tripleo_cluster().fencing
    assert fencing.warnings == ("no fence device fences controller-1 controller-2",)
    (pending,) = fencing.history
    assert (pending.status, pending.completed) == ("pending", None)


def test_fencing_disabled_warns():
    """stonith-enabled=false is said loud."""
    xml = CRM_MON_STACKHA.replace('stonith-enabled="true"', 'stonith-enabled="false"')
    fencing = stackha_cluster(crm_mon_xml=xml).fencing
    assert fencing.enabled is False
    assert "stonith-enabled is false: no node will be fenced" in fencing.warnings
    assert render_text(stackha_cluster(crm_mon_xml=xml)).count("Fencing DISABLED") == 1


def test_a_device_without_host_list_fences_what_it_lists():
    """Neither pcmk_host_list nor pcmk_host_map: Pacemaker asks the device; no coverage guess."""
    cib = CIB_STACKHA.replace('name="pcmk_host_list" value="node3"', 'name="port" value="3"')
    fencing = stackha_cluster(cib_xml=cib).fencing
    device = next(d for d in fencing.devices if d.id == "fence-ipmi-node3")
    assert (device.targets, device.targets_from, device.warnings) == ((), "dynamic", ())
    assert fencing.warnings == ()


def test_a_cluster_with_nothing_configured():
    """No resources, no fence device: the cluster line and a fencing warning, nothing else."""
    status = summarise(
        crm_mon.parse_status(
            '<pacemaker-result api-version="2.25" request="crm_mon"><summary>'
            '<current_dc present="false"/></summary><nodes>'
            '<node name="node1" id="1" online="false" standby="false" standby_onfail="false" '
            'maintenance="false" pending="true" unclean="false" shutdown="false" '
            'expected_up="false" is_dc="false" resources_running="0" type="member"/>'
            '</nodes><resources/><status code="0" message="OK"/></pacemaker-result>'
        ),
        parse_configuration("<configuration><crm_config/><resources/></configuration>"),
    )
    assert render_text(status) == (
        "cluster: no DC, NO QUORUM; online -; pending node1\n"
        "Fencing\n"
        "  WARNING no fence device is configured\n"
        "  history  none\n"
    )


# -- output --------------------------------------------------------------------------------


def test_text_of_a_stackha_cluster():
    """The text output, section by section, aligned."""
    view = BrokerView(seen_from="node1", known=True, running_nodes=("rabbit@node1", "rabbit@node2"))
    assert render_text(stackha_cluster(view)) == TEXT_STACKHA


def test_text_of_a_tripleo_cluster():
    """Resource-agents' and systemd agents show in the same sections."""
    assert render_text(tripleo_cluster()) == TEXT_TRIPLEO


def test_json_has_the_documented_shape():
    """One object, the seven documented keys, nested objects as docs/status.md lists them."""
    view = BrokerView(
        seen_from="node1",
        known=True,
        running_nodes=("rabbit@node1",),
        partitions={"rabbit@node1": ("rabbit@node2",)},
    )
    data = json.loads(json.dumps(as_json(stackha_cluster(view))))
    assert list(data) == [
        "cluster",
        "vips",
        "services",
        "galera",
        "rabbitmq",
        "fencing",
        "failures",
    ]
    assert data["vips"][0] == {
        "id": "vip-public",
        "agent": "ocf:heartbeat:IPaddr2",
        "address": "192.168.213.100",
        "held_by": ["node2"],
        "failed": False,
    }
    assert data["rabbitmq"][0]["broker_view"] == {
        "seen_from": "node1",
        "known": True,
        "running_nodes": ["rabbit@node1"],
        "partitions": {"rabbit@node1": ["rabbit@node2"]},
        "error": None,
    }
    assert data["galera"][0]["nodes"][2]["safe_to_bootstrap"] is False
    assert data["fencing"]["levels"][0] == {
        "target": "node1",
        "target_kind": "node",
        "index": 1,
        "devices": ["fence-ipmi-node1"],
    }
    assert data["fencing"]["history"][0] == {
        "target": "node3",
        "action": "reboot",
        "status": "success",
        "origin": "node2",
        "client": "pacemaker-controld.1342",
        "delegate": "node1",
        "completed": "2024-03-05 09:58:41 +01:00",
        "exit_reason": None,
    }
    assert data["failures"][0] == {
        "resource": "nova-api",
        "operation": "start",
        "interval_ms": 0,
        "node": "node3",
        "exit_status": "not installed",
        "exit_code": 5,
        "exit_reason": "/usr/bin/nova-api not found",
        "status": "complete",
        "last_rc_change": "2024-03-05 10:05:12 +01:00",
        "op_key": "nova-api_start_0",
    }


# -- gathering -----------------------------------------------------------------------------


def test_gather_asks_crm_mon_the_cib_and_the_local_broker(fake_runner):
    """On a node running RabbitMQ: crm_mon, cibadmin, then rabbitmqctl aimed at its broker."""
    fake_runner.expect(CRM_MON, stdout=CRM_MON_STACKHA)
    fake_runner.expect(CIBADMIN, stdout=CIB_STACKHA)
    fake_runner.expect(RABBITMQCTL, stdout=cluster_status_json())
    status = gather(fake_runner, local_node="node1")
    view = status.rabbitmq[0].broker_view
    assert view == BrokerView("node1", True, ("rabbit@node1", "rabbit@node2"), {}, None)


def test_gather_matches_the_local_node_by_short_name(fake_runner):
    """A uname with a domain still finds its Pacemaker node."""
    fake_runner.expect(CRM_MON, stdout=CRM_MON_STACKHA)
    fake_runner.expect(CIBADMIN, stdout=CIB_STACKHA)
    fake_runner.expect(RABBITMQCTL, stdout=cluster_status_json())
    assert gather(fake_runner, local_node="node1.example.com").rabbitmq[0].broker_view.known


def test_gather_does_not_ask_rabbitmq_where_it_does_not_run(fake_runner):
    """node3 runs no broker: two commands, and no broker view."""
    fake_runner.expect(CRM_MON, stdout=CRM_MON_STACKHA)
    fake_runner.expect(CIBADMIN, stdout=CIB_STACKHA)
    assert gather(fake_runner, local_node="node3").rabbitmq[0].broker_view is None


def test_a_failing_rabbitmqctl_is_unknown_not_an_error(fake_runner):
    """rabbitmqctl failing leaves the broker's view unknown, with its reason."""
    fake_runner.expect(CRM_MON, stdout=CRM_MON_STACKHA)
    fake_runner.expect(CIBADMIN, stdout=CIB_STACKHA)
    fake_runner.expect(
        RABBITMQCTL,
        returncode=69,
        stderr="Error: unable to perform an operation on node 'rabbit@node1'.\n",
    )
    status = gather(fake_runner, local_node="node1")
    view = status.rabbitmq[0].broker_view
    assert (view.known, view.error) == (
        False,
        "cluster_status failed: Error: unable to perform an operation on node 'rabbit@node1'.",
    )
    assert "rabbitmqctl  on node1: unknown (cluster_status failed:" in render_text(status)


class RunnerWithoutRabbitMQ(FakeRunner):
    """A node where rabbitmqctl is not installed."""

    def run(self, argv, **kwargs):
        if argv[0] == "/usr/sbin/rabbitmqctl":
            raise CommandNotFound("/usr/sbin/rabbitmqctl: not found")
        return super().run(argv, **kwargs)


def test_an_absent_rabbitmqctl_is_unknown_not_an_error():
    """No rabbitmqctl at all: unknown too."""
    runner = RunnerWithoutRabbitMQ()
    runner.expect(CRM_MON, stdout=CRM_MON_STACKHA)
    runner.expect(CIBADMIN, stdout=CIB_STACKHA)
    view = gather(runner, local_node="node2").rabbitmq[0].broker_view
    assert (view.seen_from, view.known, view.error) == (
        "node2",
        False,
        "/usr/sbin/rabbitmqctl: not found",
    )
    runner.assert_done()


def test_a_broker_without_a_published_name_is_asked_without_n(fake_runner):
    """No <rsc>-node attribute: rabbitmqctl's own default node."""
    xml = CRM_MON_STACKHA.replace('<attribute name="rabbitmq-node" value="rabbit@node1"/>', "")
    fake_runner.expect(CRM_MON, stdout=xml)
    fake_runner.expect(CIBADMIN, stdout=CIB_STACKHA)
    fake_runner.expect(
        ["/usr/sbin/rabbitmqctl", "-q", "cluster_status", "--formatter", "json"],
        stdout="not json",
    )
    view = gather(fake_runner, local_node="node1").rabbitmq[0].broker_view
    assert (view.known, view.error) == (False, "cluster_status did not print JSON")


def test_gather_without_a_cluster_says_so(fake_runner):
    """crm_mon that cannot reach the cluster: a StatusError with crm_mon's own reason."""
    fake_runner.expect(CRM_MON, returncode=102, stdout=CRM_MON_NOT_CONNECTED)
    with pytest.raises(StatusError) as raised:
        gather(fake_runner, local_node="node1")
    assert str(raised.value) == (
        "cannot reach the cluster: crm_mon failed: "
        "crm_mon: Error: cluster is not available on this node"
    )


def test_gather_when_the_cib_cannot_be_read(fake_runner):
    """cibadmin failing is an error naming it."""
    fake_runner.expect(CRM_MON, stdout=CRM_MON_STACKHA)
    fake_runner.expect(
        CIBADMIN,
        returncode=102,
        stderr="Call cib_query failed (-107): Transport endpoint is not connected\n",
    )
    with pytest.raises(StatusError, match="cibadmin --query failed: Call cib_query failed"):
        gather(fake_runner, local_node="node1")


# -- the command ---------------------------------------------------------------------------


def test_stackha_status_prints_text(fake_runner):
    """`stackha status` prints the text (no broker runs anywhere: no rabbitmqctl)."""
    fake_runner.expect(CRM_MON, stdout=CRM_MON_TRIPLEO)
    fake_runner.expect(CIBADMIN, stdout=CIB_TRIPLEO)
    out = io.StringIO()
    assert cli.main(["status"], out=out, runner=fake_runner) == 0
    assert out.getvalue() == TEXT_TRIPLEO


def test_stackha_status_json(fake_runner):
    """`stackha status --json` prints one JSON object."""
    fake_runner.expect(CRM_MON, stdout=CRM_MON_TRIPLEO)
    fake_runner.expect(CIBADMIN, stdout=CIB_TRIPLEO)
    out = io.StringIO()
    assert cli.main(["status", "--json"], out=out, runner=fake_runner) == 0
    data = json.loads(out.getvalue())
    assert data["cluster"]["unclean"] == ["controller-2"]


def test_stackha_status_error_is_one_line_and_exit_1(fake_runner, capsys):
    """An unreachable cluster: one error line on stderr, exit 1, no traceback."""
    fake_runner.expect(CRM_MON, returncode=102, stdout=CRM_MON_NOT_CONNECTED)
    out = io.StringIO()
    assert cli.main(["status"], out=out, runner=fake_runner) == 1
    assert out.getvalue() == ""
    assert capsys.readouterr().err == (
        "stackha status: error: cannot reach the cluster: crm_mon failed: "
        "crm_mon: Error: cluster is not available on this node\n"
    )


def test_the_status_module_does_not_import_lxml():
    """stackha status parses with the standard library: it must answer at once."""
    import subprocess
    import sys

    lib = Path(__file__).resolve().parents[2] / "lib"
    code = "import sys, stackha.openstack_status; print('lxml' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(lib)},
        check=True,
    )
    assert result.stdout.strip() == "False"
