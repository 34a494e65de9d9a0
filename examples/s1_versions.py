"""Tutorial §1: the versions. The server answers for itself and for its workers."""

import os

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

versions = client.version()
print("kerasd", versions["kerasd"])
print("tensorflow", versions["tensorflow"])  # '2.21.0'
print("keras", versions["keras"])  # '3.15.1'
print("backend", versions["backend"])
for worker in versions.get("workers", []):
    print("worker", worker.get("name"), "keras", worker.get("keras"), worker.get("backend"))
