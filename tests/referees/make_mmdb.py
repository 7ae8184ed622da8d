#!/usr/bin/env python3
"""Writes a small MaxMind-format database with the independent PyPI writer
mmdb-writer (https://github.com/vimt/MaxMind-DB-Writer-python), in the
layouts of MaxMind's GeoLite2 Country and ASN databases
(https://dev.maxmind.com/geoip/docs/databases), for playgate's GeoIP tests
and benchmark (tests/api/geoip.rs, scripts/bench).

    make_mmdb.py country OUT.mmdb 192.0.2.0/24=RU 198.51.100.0/24=KZ ...
    make_mmdb.py asn OUT.mmdb 192.0.2.0/24=64500 ...
    make_mmdb.py garbage OUT.mmdb          # not a database at all

IPv4 networks only, in an IPv4 tree (ip_version 4).
"""
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def main(argv):
    kind, out, pairs = argv[1], argv[2], argv[3:]
    if kind == "garbage":
        with open(out, "wb") as f:
            f.write(b"this is not a MaxMind DB file\n" * 64)
        return 0
    database_type = {"country": "GeoLite2-Country", "asn": "GeoLite2-ASN"}[kind]
    writer = MMDBWriter(4, database_type, languages=["en"], description="playgate test data",
                        int_type="u32")
    for pair in pairs:
        network, value = pair.split("=", 1)
        if kind == "country":
            record = {"country": {"iso_code": value, "names": {"en": value}}}
        else:
            record = {"autonomous_system_number": int(value),
                      "autonomous_system_organization": f"AS{value} test"}
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
