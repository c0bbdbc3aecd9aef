"""Fake fence devices for the fencing library's unit tests."""

from __future__ import annotations

import threading


class FakePowerDevice:
    """A device whose power follows requests after ``lag`` seconds of a fake clock."""

    def __init__(self, clock, state="on", lag=0.0, outlets=None, refuse=None):
        self.clock = clock
        self.state = {None: state}
        self.pending = {}
        self.lag = lag
        self.outlets = outlets
        self.refuse = refuse or set()
        self.calls = []
        if outlets:
            self.state = {number: state for number in outlets}

    def login(self):
        self.calls.append(("login",))

    def _settle(self, plug):
        target = self.pending.get(plug)
        if target and self.clock.monotonic() >= target[1]:
            self.state[plug] = target[0]
            del self.pending[plug]

    def get_power(self, plug):
        self.calls.append(("get", plug))
        self._settle(plug)
        return self.state[plug]

    def set_power(self, plug, state):
        self.calls.append(("set", plug, state))
        if state in self.refuse:
            return  # accepts the command, never switches: a device that lies
        self.pending[plug] = (state, self.clock.monotonic() + self.lag)
        self._settle(plug)

    def list_outlets(self):
        return self.outlets

    def logout(self):
        self.calls.append(("logout",))


class HangingDevice(FakePowerDevice):
    """A BMC that answers the login and then goes silent."""

    def __init__(self, clock):
        super().__init__(clock)
        self.release = threading.Event()

    def get_power(self, plug):
        self.release.wait(30)
        return "on"
