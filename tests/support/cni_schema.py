"""The CNI result schemas of the spec, as pydantic models with no extra keys allowed.

Written from SPEC.md / libcni's types (not from our code), so validating our output against them is an
independent check that each version's result has exactly the shape a runtime decodes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DNS(Strict):
    nameservers: list[str] | None = None
    domain: str | None = None
    search: list[str] | None = None
    options: list[str] | None = None


class Route020(Strict):
    dst: str
    gw: str | None = None


class IP020(Strict):
    ip: str
    gateway: str | None = None
    routes: list[Route020] | None = None


class Result020(Strict):
    cniVersion: Literal["0.1.0", "0.2.0"]
    ip4: IP020 | None = None
    ip6: IP020 | None = None
    dns: DNS | None = None


class Interface040(Strict):
    name: str
    mac: str | None = None
    sandbox: str | None = None


class IP040(Strict):
    version: Literal["4", "6"]
    interface: int | None = Field(default=None, ge=0)
    address: str
    gateway: str | None = None


class Result040(Strict):
    cniVersion: Literal["0.3.0", "0.3.1", "0.4.0"]
    interfaces: list[Interface040] | None = None
    ips: list[IP040] | None = None
    routes: list[Route020] | None = None
    dns: DNS | None = None


class Interface100(Strict):
    name: str
    mac: str | None = None
    mtu: int | None = None
    sandbox: str | None = None
    socketPath: str | None = None
    pciID: str | None = None


class IP100(Strict):
    interface: int | None = Field(default=None, ge=0)
    address: str
    gateway: str | None = None


class Route100(Strict):
    dst: str
    gw: str | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


class Result100(Strict):
    cniVersion: Literal["1.0.0", "1.1.0"]
    interfaces: list[Interface100] | None = None
    ips: list[IP100] | None = None
    routes: list[Route100] | None = None
    dns: DNS | None = None


class Error(Strict):
    cniVersion: str | None = None
    code: int
    msg: str
    details: str | None = None


def validate_result(data: dict[str, object]) -> BaseModel:
    version = data.get("cniVersion")
    models: dict[str, type[BaseModel]] = {
        "0.1.0": Result020,
        "0.2.0": Result020,
        "1.0.0": Result100,
        "1.1.0": Result100,
    }
    return models.get(str(version), Result040).model_validate(data)


def validate_error(data: dict[str, object]) -> Error:
    return Error.model_validate(data)
