"""Seeded generators of realistic city data, any size, for demos, tests and benchmarks.

Each writes rows matching its schema in schemas/datasets/ (CSV or JSON lines), streaming, so a
million rows never sit in memory.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
DISTRICTS = ["Centre", "Harbour", "Old Town", "North Park", "Riverside", "University", "Airport", "Eastgate"]
STREETS = ["Market Street", "Station Road", "Harbour Lane", "Elm Avenue", "Bridge Street", "Mill Road", "Park Row"]
Row = dict[str, Any]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def traffic_flow(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    segments = max(1, min(2000, rows // 288 or 1))
    for index in range(rows):
        segment, interval = index % segments, index // segments
        moment = START + timedelta(minutes=5 * interval)
        rush = 1.0 + (0.8 if moment.hour in (7, 8, 17, 18) else 0.0)
        count = int(rng.gauss(60 * rush, 12))
        speed = max(3.0, rng.gauss(48 / rush, 8) - (40 if spike and segment % 7 == 0 else 0))
        yield {
            "segment_id": f"SEG-{segment + 1:05d}",
            "district": DISTRICTS[segment % len(DISTRICTS)],
            "measured_at": _iso(moment),
            "vehicle_count": max(0, count),
            "avg_speed_kmh": round(speed, 1),
            "occupancy_pct": round(min(100.0, max(0.0, rng.gauss(22 * rush, 6))), 1),
            "camera_id": f"CAM-{segment % 400 + 1:04d}" if segment % 3 == 0 else None,
        }


def plate_pool(count: int) -> list[str]:
    """The city's vehicles: the same plates, in the same order, for every dataset that names them
    (so plate reads and fines are about the same cars)."""
    rng = random.Random("city-plates")
    letters = "ABCDEFGHJKLMNPRSTVWXYZ"
    return [
        f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(100, 999)}{rng.choice(letters)}{rng.choice(letters)}"
        for _ in range(count)
    ]


def plate_reads(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    plates = plate_pool(max(10, rows // 5))
    for index in range(rows):
        yield {
            "camera_id": f"CAM-{rng.randint(1, 400):04d}",
            "read_at": _iso(START + timedelta(seconds=index * 2)),
            "plate": rng.choice(plates),
            "confidence": round(rng.uniform(0.7, 1.0), 3),
            "lane": rng.randint(1, 4),
        }


def air_quality(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    stations = 24
    for index in range(rows):
        station, hour = index % stations, index // stations
        surge = 70.0 if spike and station == 3 and hour % 24 in (7, 8, 9) else 0.0
        yield {
            "station_id": f"AQ-{station + 1:03d}",
            "district": DISTRICTS[station % len(DISTRICTS)],
            "measured_at": _iso(START + timedelta(hours=hour)),
            "pm25": round(max(1.0, rng.gauss(14, 5) + surge), 1),
            "pm10": round(max(2.0, rng.gauss(24, 8) + surge * 1.4), 1),
            "no2": round(max(1.0, rng.gauss(32, 10)), 1),
            "o3": round(max(1.0, rng.gauss(55, 15)), 1) if index % 11 else None,
        }


def air_quality_history(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    """Weeks of hourly readings (air-quality's schema) with the cycles of a city's air: rush hours
    on working days, quieter weekends and nights, weather that lingers (an AR(1) drift) and now and
    then an episode of a few days. Station AQ-001 stands by a busy road: its weekday mornings pass
    75 µg/m³. Stations: rows // 840 (5 weeks each), at most 50; the hours run from Monday 06:00, so
    862 hours end at 03:00 on a Monday, a few hours before its rush. `spike`: a far worse morning."""
    stations = max(1, min(50, rows // 840))
    hours = rows // stations
    drift = [0.0] * stations
    episode = [0] * stations
    for hour in range(hours):
        moment = START + timedelta(hours=hour)
        working = moment.weekday() < 5
        for station in range(stations):
            busy = station == 0
            rush = (
                (58.0 if busy else 16.0)
                if moment.hour in (7, 8)
                else (30.0 if busy else 10.0)
                if moment.hour in (17, 18)
                else 0.0
            )
            night = -5.0 if moment.hour < 5 else 0.0
            if episode[station] == 0 and rng.random() < 1 / 500:
                episode[station] = rng.randint(24, 72)
            lingering = 15.0 if episode[station] else 0.0
            episode[station] = max(0, episode[station] - 1)
            drift[station] = 0.8 * drift[station] + rng.gauss(0, 3)
            surge = 40.0 if spike and busy and hour >= hours - 24 and moment.hour in (7, 8, 9) else 0.0
            base = 14.0 + 2 * (station % 5) + (6.0 if working else -4.0) + night
            pm25 = base + (rush if working else rush / 4) + lingering + drift[station] + surge
            yield {
                "station_id": f"AQ-{station + 1:03d}",
                "district": DISTRICTS[station % len(DISTRICTS)],
                "measured_at": _iso(moment),
                "pm25": round(max(1.0, pm25), 1),
                "pm10": round(max(2.0, pm25 * 1.6 + rng.gauss(0, 4)), 1),
                "no2": round(max(1.0, 20 + rush * 0.8 + rng.gauss(0, 6)), 1),
                "o3": round(max(1.0, rng.gauss(55, 15)), 1),
            }


def hospital_beds(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    wards = ["icu", "general", "paediatric", "maternity", "emergency"]
    capacity = {"icu": 24, "general": 320, "paediatric": 60, "maternity": 48, "emergency": 40}
    for index in range(rows):
        hospital, ward = index % 6, wards[(index // 6) % len(wards)]
        total = capacity[ward]
        yield {
            "hospital_id": f"HOSP-{hospital + 1:02d}",
            "ward_type": ward,
            "reported_at": _iso(START + timedelta(hours=index // 30)),
            "beds_total": total,
            "beds_occupied": min(total, max(0, int(rng.gauss(total * 0.82, total * 0.08)))),
        }


def service_requests(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    # A busy city: a request every 9 seconds, potholes and waste far more often than graffiti,
    # the centre more than the airport (so some hourly groups are large and some are small).
    categories, category_weights = ["pothole", "street-light", "waste", "noise", "graffiti", "other"], [8, 4, 6, 3, 1, 1]
    district_weights = [8, 5, 5, 3, 3, 2, 1, 2]
    for index in range(rows):
        yield {
            "request_id": f"SR-{index + 1:08d}",
            "opened_at": _iso(START + timedelta(seconds=index * 9)),
            "category": rng.choices(categories, category_weights)[0],
            "district": rng.choices(DISTRICTS, district_weights)[0],
            "address": f"{rng.randint(1, 240)} {rng.choice(STREETS)}",
            "phone": f"+44 7{rng.randint(100, 999)} {rng.randint(100000, 999999)}" if rng.random() < 0.7 else None,
            "latitude": round(51.45 + rng.uniform(-0.05, 0.05), 6),
            "longitude": round(-2.58 + rng.uniform(-0.08, 0.08), 6),
            "status": rng.choice(["open", "in-progress", "closed"]),
            # Citizens file more than one request: a few thousand of them, some often.
            "citizen_id": f"CIT-{int(rng.paretovariate(1.2)) % 5000:06d}" if rng.random() < 0.8 else None,
        }


def delivery_gps(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    vehicles = [(f"VAN-{n:04d}", rng.choice(["ParcelCo", "CityFresh", "QuickDrop", "GreenVan"])) for n in range(1, 81)]
    positions = {v: (51.45 + rng.uniform(-0.03, 0.03), -2.58 + rng.uniform(-0.05, 0.05)) for v, _ in vehicles}
    for index in range(rows):
        vehicle, operator = vehicles[index % len(vehicles)]
        lat, lon = positions[vehicle]
        lat, lon = lat + rng.uniform(-0.0004, 0.0004), lon + rng.uniform(-0.0006, 0.0006)
        positions[vehicle] = (lat, lon)
        yield {
            "vehicle_id": vehicle,
            "operator": operator,
            "recorded_at": _iso(START + timedelta(seconds=30 * (index // len(vehicles)))),
            "latitude": round(lat, 6),
            "longitude": round(lon, 6),
            # Slower in the centre's traffic than on the outskirts.
            "speed_kmh": round(max(0.0, rng.gauss(10 + 5 * _km_from_centre(lat, lon), 6)), 1),
        }


def _km_from_centre(lat: float, lon: float) -> float:
    return math.hypot((lat - CITY_CENTRE[0]) * KM_PER_DEGREE_LAT, (lon - CITY_CENTRE[1]) * KM_PER_DEGREE_LON)


def parking_fines(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    plates = plate_pool(2000)
    offences = [("parking", 60.0), ("bus-lane", 90.0), ("red-light", 120.0), ("speeding", 150.0), ("low-emission-zone", 80.0)]
    for index in range(rows):
        offence, amount = rng.choice(offences)
        yield {
            "fine_id": f"F-{index + 1:08d}",
            "issued_at": _iso(START + timedelta(minutes=index * 3)),
            "district": rng.choice(DISTRICTS),
            "plate": rng.choice(plates),
            "offence": offence,
            "amount_eur": amount,
        }


# The demo city's districts on the map: the centre a ring around (51.45, -2.58), the others sectors
# around it, out to about 5 km; borders wave as a function of the angle, so neighbours share them.
CITY_CENTRE, KM_PER_DEGREE_LAT, KM_PER_DEGREE_LON = (51.45, -2.58), 111.2, 69.3


def _radius(km: float, angle: float) -> float:
    return km * (1 + 0.12 * math.sin(3 * angle + 0.4) + 0.07 * math.cos(5 * angle))


def _point(km: float, angle: float) -> list[float]:
    lat, lon = CITY_CENTRE
    distance = _radius(km, angle)
    return [
        round(lon + distance * math.cos(angle) / KM_PER_DEGREE_LON, 5),
        round(lat + distance * math.sin(angle) / KM_PER_DEGREE_LAT, 5),
    ]


def district_boundaries(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    """One row per district (`rows` is ignored): its outline as GeoJSON, its area."""
    inner, outer, steps = 1.6, 5.0, 12
    around = DISTRICTS[1:]
    width = 2 * math.pi / len(around)
    yield _district(DISTRICTS[0], [_point(inner, 2 * math.pi * i / (steps * len(around))) for i in range(steps * len(around))])
    for index, name in enumerate(around):
        start = index * width
        angles = [start + width * i / steps for i in range(steps + 1)]
        ring = [_point(outer, a) for a in angles] + [_point(inner, a) for a in reversed(angles)]
        yield _district(name, ring)


def _district(name: str, ring: list[list[float]]) -> Row:
    closed = [*ring, ring[0]]
    # The shoelace formula on the local plane (km): good enough for a few km.
    xs = [x * KM_PER_DEGREE_LON for x, _ in closed]
    ys = [y * KM_PER_DEGREE_LAT for _, y in closed]
    area = abs(sum(xs[i] * ys[i + 1] - xs[i + 1] * ys[i] for i in range(len(closed) - 1))) / 2
    return {"district": name, "geometry": json.dumps({"type": "Polygon", "coordinates": [closed]}), "area_km2": round(area, 2)}


def building_energy(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    """Hourly meter readings of the city's public buildings (schools, offices, pools, libraries)."""
    kinds = {"school": 180.0, "office": 240.0, "pool": 420.0, "library": 60.0}
    buildings = [(f"BLD-{n + 1:04d}", list(kinds)[n % 4], DISTRICTS[n % len(DISTRICTS)]) for n in range(40)]
    for index in range(rows):
        building, kind, district = buildings[index % len(buildings)]
        moment = START + timedelta(hours=index // len(buildings))
        open_hours = 7 <= moment.hour < 19
        load = kinds[kind] * (1.0 if open_hours else 0.35) * (1.6 if spike and kind == "pool" else 1.0)
        yield {
            "building_id": building,
            "building_type": kind,
            "district": district,
            "read_at": _iso(moment),
            "kwh": round(max(0.0, rng.gauss(load, load * 0.1)), 1),
        }


def waste_collection(rng: random.Random, rows: int, spike: bool = False) -> Iterator[Row]:
    """Collections by the city's rounds: tonnes collected and bins missed, per round and hour."""
    rounds = [(f"RND-{n + 1:03d}", DISTRICTS[n % len(DISTRICTS)]) for n in range(16)]
    for index in range(rows):
        round_id, district = rounds[index % len(rounds)]
        moment = START + timedelta(hours=index // len(rounds))
        working = 6 <= moment.hour < 20
        yield {
            "round_id": round_id,
            "district": district,
            "collected_at": _iso(moment),
            "tonnes": round(max(0.0, rng.gauss(2.4 if working else 0.3, 0.5)), 2),
            "bins_missed": max(0, int(rng.gauss(3 if working else 0, 2))),
        }


GENERATORS: dict[str, Callable[[random.Random, int, bool], Iterator[Row]]] = {
    "traffic-flow": traffic_flow,
    "plate-reads": plate_reads,
    "air-quality": air_quality,
    "air-quality-history": air_quality_history,
    "hospital-beds": hospital_beds,
    "service-requests": service_requests,
    "delivery-gps": delivery_gps,
    "parking-fines": parking_fines,
    "district-boundaries": district_boundaries,
    "building-energy": building_energy,
    "waste-collection": waste_collection,
}


def generate(name: str, rows: int, out: Path, seed: int = 7, spike: bool = False) -> Path:
    """Write `rows` rows of dataset `name` to `out` (.csv or .jsonl, by its suffix); fewer where the
    dataset has fewer (a city's eight districts)."""
    written(name, rows, out, seed, spike)
    return out


def written(name: str, rows: int, out: Path, seed: int = 7, spike: bool = False) -> int:
    """`generate`, answering how many rows it wrote."""
    rng = random.Random(f"{name}:{seed}")
    records = _counted(GENERATORS[name](rng, rows, spike))
    with out.open("w", encoding="utf-8", newline="") as handle:
        _write_jsonl(handle, records) if out.suffix == ".jsonl" else _write_csv(handle, records)
    return records.count


class _counted(Iterator[Row]):  # noqa: N801 - reads as what it wraps
    def __init__(self, records: Iterator[Row]) -> None:
        self._records = records
        self.count = 0

    def __next__(self) -> Row:
        record = next(self._records)
        self.count += 1
        return record


def _write_csv(handle: TextIO, records: Iterator[Row]) -> None:
    first = next(records, None)
    if first is None:
        return
    writer = csv.DictWriter(handle, fieldnames=list(first))
    writer.writeheader()
    writer.writerow(first)
    writer.writerows(records)


def _write_jsonl(handle: TextIO, records: Iterator[Row]) -> None:
    for record in records:
        handle.write(json.dumps(record) + "\n")
