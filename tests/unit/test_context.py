from stackha.ocf.context import read_context


def test_a_monitor_without_interval_is_a_probe():
    """Pacemaker sometimes leaves the interval unset on a probe (resource-agents #1579)."""
    assert read_context(["agent", "monitor"], {}).is_probe
    assert read_context(["agent", "monitor"], {"OCF_RESKEY_CRM_meta_interval": "0"}).is_probe
    assert not read_context(
        ["agent", "monitor"], {"OCF_RESKEY_CRM_meta_interval": "10000"}
    ).is_probe
    assert not read_context(["agent", "start"], {}).is_probe


def test_parameters_and_meta_are_separated():
    context = read_context(
        ["agent", "start"],
        {
            "OCF_RESKEY_port": "80",
            "OCF_RESKEY_CRM_meta_timeout": "30000",
            "OCF_RESKEY_CRM_meta_clone_max": "3",
            "OCF_RESOURCE_INSTANCE": "web:2",
        },
    )
    assert context.parameters == {"port": "80"}
    assert context.timeout_s == 30.0
    assert context.is_clone
    assert context.resource_name == "web"


def test_action_falls_back_to_ocf_testers_variable():
    assert read_context(["agent"], {"__OCF_ACTION": "stop"}).action == "stop"


def test_ha_debug_zero_means_off():
    """ocf.py turns debug on for any string, "0" included; we do not."""
    assert not read_context(["a", "start"], {"HA_debug": "0"}).debug
    assert read_context(["a", "start"], {"HA_debug": "1"}).debug
    assert read_context(["a", "start"], {"HA_debug": "yes"}).debug


def test_caller_ocf_version():
    context = read_context(
        ["a", "meta-data"], {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}
    )
    assert context.caller_ocf_version == (1, 1)
    assert read_context(["a", "meta-data"], {}).caller_ocf_version is None


def test_log_facility_none_means_no_syslog():
    assert read_context(["a", "start"], {"HA_LOGFACILITY": "none"}).log_facility is None
    assert read_context(["a", "start"], {"HA_LOGFACILITY": "daemon"}).log_facility == "daemon"


def test_notify_variables_are_parsed_with_legacy_fallback():
    """Notify sets are read by their new names, falling back to master/slave."""
    env = {
        "OCF_RESKEY_CRM_meta_notify_type": "post",
        "OCF_RESKEY_CRM_meta_notify_operation": "start",
        "OCF_RESKEY_CRM_meta_notify_active_resource": "db:0 db:1",
        "OCF_RESKEY_CRM_meta_notify_active_uname": "n1 n2",
        "OCF_RESKEY_CRM_meta_notify_start_resource": "db:2",
        "OCF_RESKEY_CRM_meta_notify_start_uname": "n3",
        "OCF_RESKEY_CRM_meta_notify_stop_resource": "db:1",
        "OCF_RESKEY_CRM_meta_notify_stop_uname": "n2",
        "OCF_RESKEY_CRM_meta_notify_master_resource": "db:0",
        "OCF_RESKEY_CRM_meta_notify_master_uname": "n1",
        "OCF_RESKEY_CRM_meta_notify_promote_resource": " ",
    }
    notify = read_context(["a", "notify"], env).notify
    assert notify is not None
    assert notify.unames("promoted") == ("n1",)
    assert notify.unames("promote") == ()
    assert notify.active_unames_after() == {"n1", "n3"}
