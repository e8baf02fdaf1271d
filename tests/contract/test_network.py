"""Networks on every backend: setup (idempotent) and remove; results and errors."""

from __future__ import annotations

import ipaddress

import attrs
import pytest

from mcpmanager import errors
from tests.contract.backends import KILL, Backend


def test_setup_is_idempotent_and_remove_frees(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    req = backend.network_request(cid)
    svc.start_container(cid)
    ip = svc.setup_network(req).ip
    addr = ipaddress.ip_address(ip)
    assert not addr.is_unspecified
    assert str(addr) != "127.0.0.1"
    assert svc.setup_network(req).ip == ip
    svc.remove_network(req)
    svc.remove_network(req)  # nothing left to remove: fine


def test_remove_after_stop(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    req = backend.network_request(cid)
    svc.start_container(cid)
    svc.setup_network(req)
    svc.stop_container(cid, KILL)
    svc.remove_network(req)
    svc.start_container(cid)
    assert svc.setup_network(req).ip


def test_setup_needs_a_running_task(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    req = backend.network_request(cid)
    with pytest.raises(errors.FailedPrecondition, match=cid):
        svc.setup_network(req)  # no task yet
    svc.start_container(cid)
    svc.stop_container(cid, KILL)
    with pytest.raises(errors.FailedPrecondition, match=cid):
        svc.setup_network(req)  # task stopped
    svc.remove_network(req)  # never attached: nothing to do


def test_missing_container_and_bad_id(backend: Backend) -> None:
    svc = backend.service
    req = backend.network_request("nope-3")
    with pytest.raises(errors.NotFound, match="nope-3"):
        svc.setup_network(req)
    svc.remove_network(req)  # nothing attached: fine
    for bad in ("", "p--q", "bad/id"):
        with pytest.raises(errors.InvalidArgument):
            svc.setup_network(attrs.evolve(req, container_id=bad))
        with pytest.raises(errors.InvalidArgument):
            svc.remove_network(attrs.evolve(req, container_id=bad))


def test_cni_dirs_must_be_named(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    req = backend.network_request(cid)
    svc.start_container(cid)
    if not backend.cni:  # its own network: the CNI directories are not read
        odd = attrs.evolve(req, cni_conf_dir="", cni_bin_dir="/nonexistent")
        ip = svc.setup_network(odd).ip
        assert svc.setup_network(req).ip == ip
        svc.remove_network(odd)
        return
    for field in ("cni_conf_dir", "cni_bin_dir"):
        bad = attrs.evolve(req, **{field: ""})
        with pytest.raises(errors.InvalidArgument, match=field):
            svc.setup_network(bad)
        with pytest.raises(errors.InvalidArgument, match=field):
            svc.remove_network(bad)
    assert svc.setup_network(req).ip
