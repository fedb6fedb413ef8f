"""Power sensors exposed through hwmon: INA219/226/260 (`power*_input`, microwatts) and
devices with paired `in*_input` (mV) and `curr*_input` (mA) channels, e.g. INA3221, where
P = V x I. Also the Jetson INA3221 rails (`ina3221` in hwmon, or the older iio layout)."""

from __future__ import annotations

import re
from pathlib import Path

from edge_rnn_harness.board.devicefs import device_path, read_int, read_text
from edge_rnn_harness.board.power.base import MeterUnavailable, SampledMeter

HWMON = "/sys/class/hwmon"
#: Jetson iio layout (L4T before 32.x kernels moved it to hwmon)
JETSON_IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
UW_PER_W = 1_000_000
#: hwmon chip names (prefixes) of board power monitors, which `hwmon` and `auto` look for
BOARD_MONITORS = ("ina", "ltc2945", "max34440")
#: rails that carry a board's whole input: where one is present, the other channels are
#: parts of it and adding them would count the same power twice
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")

_POWER = re.compile(r"power(\d+)_input")
_VOLT = re.compile(r"in(\d+)_input")


class Channel:
    """One sensor channel: its label and how to read its power in watts."""

    def __init__(self, label: str, files: tuple[Path, ...], scale: float) -> None:
        self.label, self.files, self.scale = label, files, scale

    def watts(self) -> float:
        """The channel's power now: the product of its files' values times `scale`."""
        product = 1.0
        for path in self.files:
            value = read_int(path)
            if value is None:
                raise OSError(f"{path} vanished or is unreadable")
            product *= value
        return product * self.scale


def _label(folder: Path, prefix: str, index: str, fallback: str) -> str:
    return read_text(folder / f"{prefix}{index}_label") or fallback


def hwmon_channels(folder: Path) -> list[Channel]:
    """The power channels of one hwmon device: power*_input files, else in/curr pairs."""
    names = sorted(path.name for path in folder.glob("*_input"))
    power = [_POWER.fullmatch(n).group(1) for n in names if _POWER.fullmatch(n)]
    if power:
        return [Channel(_label(folder, "power", i, f"power{i}"), (folder / f"power{i}_input",),
                        1 / UW_PER_W) for i in power]
    pairs = [m.group(1) for n in names if (m := _VOLT.fullmatch(n))
             and (folder / f"curr{m.group(1)}_input").exists()]
    return [Channel(_label(folder, "in", i, f"in{i}"),
                    (folder / f"in{i}_input", folder / f"curr{i}_input"), 1e-6)  # mV x mA
            for i in pairs]


def iio_channels(folder: Path) -> list[Channel]:
    """The power channels of a Jetson INA3221 in the iio layout (in_power*_input, mW)."""
    channels = []
    for path in sorted(folder.glob("in_power*_input")):
        index = path.name[len("in_power"):-len("_input")]
        label = read_text(folder / f"rail_name_{index}") or f"power{index}"
        channels.append(Channel(label, (path,), 1e-3))
    return channels


def whole_input(channels: list[Channel]) -> list[Channel]:
    """The input rail alone where a board reports one (its sub-rails are parts of it), else
    every channel."""
    total = [c for c in channels if c.label.upper() in INPUT_RAILS]
    return total or channels


class ChannelMeter(SampledMeter):
    """The summed power of some sensor channels, polled."""

    interval_s = 0.02

    def __init__(self, name: str, channels: list[Channel], where: Path) -> None:
        self.name, self._channels = name, whole_input(channels)
        labels = ", ".join(c.label for c in self._channels)
        self.covers = (f"the rails this sensor measures ({labels} at {where}); whatever is "
                       f"not on those rails is not counted")
        try:
            self.read()  # fails now, not in the middle of a case
        except OSError as error:
            raise MeterUnavailable(f"{name}: {error}") from None

    def read(self) -> float:
        """Watts summed over the channels."""
        return sum(channel.watts() for channel in self._channels)


def _devices() -> list[Path]:
    base = device_path(HWMON)
    return sorted(base.iterdir(), key=lambda p: p.name) if base.is_dir() else []


def hwmon_meter(selector: str | None) -> ChannelMeter:
    """The hwmon power meter: the device named `selector` (its `name` file) or at that path,
    or else the first board power monitor (a chip whose name starts with one of
    BOARD_MONITORS) with power channels. Other chips with power readings (a GPU's, a
    battery's) measure something else and are used only when named."""
    if selector and "/" in selector:
        folders = [device_path(selector)]
        if not folders[0].is_dir():
            raise MeterUnavailable(f"hwmon: no such device folder {selector}")
    elif selector:
        folders = [d for d in _devices() if read_text(d / "name") == selector]
    else:
        folders = [d for d in _devices()
                   if (read_text(d / "name") or "").startswith(BOARD_MONITORS)]
    for folder in folders:
        channels = hwmon_channels(folder)
        if channels:
            name = read_text(folder / "name") or folder.name
            return ChannelMeter(f"hwmon:{name}", channels, folder)
    if selector:
        raise MeterUnavailable(f"hwmon: no power sensor named or at {selector!r} under {HWMON}")
    raise MeterUnavailable(f"hwmon: no board power monitor ({', '.join(BOARD_MONITORS)}...) "
                           f"with power or voltage+current inputs under {HWMON}; name "
                           f"another chip with hwmon:NAME_OR_PATH")


def jetson_meter() -> ChannelMeter:
    """A Jetson's INA3221 rails: hwmon (`ina3221`) first, else the older iio layout."""
    try:
        meter = hwmon_meter("ina3221")
    except MeterUnavailable:
        pass
    else:
        meter.name = "jetson:" + meter.name
        return meter
    for folder in sorted(device_path("/").glob(JETSON_IIO_GLOB)):
        channels = iio_channels(folder)
        if channels:
            return ChannelMeter("jetson:ina3221x-iio", channels, folder)
    raise MeterUnavailable("jetson: no INA3221 in hwmon or under /sys/bus/i2c/drivers/ina3221x")
