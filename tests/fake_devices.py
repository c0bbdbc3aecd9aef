"""Fake fence devices for the fencing library's unit tests."""

from __future__ import annotations

import threading

from stackha.fencing.agent import FenceError, TransientDeviceError


class FakePowerDevice:
    """A device whose power follows requests after ``lag`` seconds of a fake clock.

    ``busy``: state → how many requests for it the device answers "Node Busy" (IPMI 0xC0)
    before it obeys. ``glitches``: numbers (from 1) of get_power calls that fail as a dropped
    session does (transient; a new login is needed).
    """

    def __init__(
        self, clock, state="on", lag=0.0, outlets=None, refuse=None, busy=None, glitches=()
    ):
        self.clock = clock
        self.state = {None: state}
        self.pending = {}
        self.lag = lag
        self.outlets = outlets
        self.refuse = refuse or set()
        self.busy = dict(busy or {})
        self.glitches = set(glitches)
        self.gets = 0
        self.logged_in = False
        self.calls = []
        if outlets:
            self.state = {number: state for number in outlets}

    def login(self):
        self.calls.append(("login",))
        self.logged_in = True

    def _settle(self, plug):
        target = self.pending.get(plug)
        if target and self.clock.monotonic() >= target[1]:
            self.state[plug] = target[0]
            del self.pending[plug]

    def get_power(self, plug):
        self.calls.append(("get", plug))
        assert self.logged_in, "asked without a session"
        self.gets += 1
        if self.gets in self.glitches:
            self.logged_in = False
            raise TransientDeviceError("BMC bmc: Session no longer connected", session_lost=True)
        self._settle(plug)
        return self.state[plug]

    def set_power(self, plug, state):
        self.calls.append(("set", plug, state))
        if self.busy.get(state, 0) > 0:
            self.busy[state] -= 1
            raise TransientDeviceError("BMC bmc: Node Busy")
        if state in self.refuse:
            return  # accepts the command, never switches: a device that lies
        self.pending[plug] = (state, self.clock.monotonic() + self.lag)
        self._settle(plug)

    def list_outlets(self):
        return self.outlets

    def logout(self):
        self.calls.append(("logout",))
        self.logged_in = False


class WrongPasswordDevice(FakePowerDevice):
    """A BMC that refuses the credentials: a final answer."""

    def login(self):
        self.calls.append(("login",))
        raise FenceError("login to BMC bmc:623 failed: Incorrect password provided")


class RefusingThenListening(FakePowerDevice):
    """A PDU whose connections are refused ``refusals`` times, then accepted."""

    def __init__(self, clock, refusals, **kwargs):
        super().__init__(clock, **kwargs)
        self.refusals = refusals

    def login(self):
        self.calls.append(("login",))
        if self.refusals > 0:
            self.refusals -= 1
            raise TransientDeviceError("PDU pdu: connection closed (Connection refused)")
        self.logged_in = True


class HangingDevice(FakePowerDevice):
    """A BMC that answers the login and then goes silent."""

    def __init__(self, clock):
        super().__init__(clock)
        self.release = threading.Event()

    def get_power(self, plug):
        self.release.wait(30)
        return "on"
