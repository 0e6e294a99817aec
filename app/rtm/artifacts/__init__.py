"""The controller-side artifact cache: everything lab and air-gapped hosts install.

Layout under the cache directory (``artifacts/`` at the repository root by default)::

    kafka/kafka_2.13-<version>.tgz   Kafka distribution, same ``libs/`` layout as Apache's
    spark/*.jar                      Spark's Kafka connector and its runtime jars
    wheels/*.whl                     everything producer and consumer hosts pip-install
    locks/{producer,consumer}.txt    their dependencies pinned with hashes, for online hosts
    manifest.json                    versions and the SHA-256 of every file above
    SHA256SUMS                       the same checksums, for ``sha256sum -c``
"""
