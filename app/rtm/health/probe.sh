#!/bin/sh
# The fab status probe, run on each host as `sh -c "$(cat probe.sh)" rtm-probe UNIT...`.
# Prints one tab-separated fact per line (see rtm/health/hostprobe.py) and needs nothing but
# sh, systemctl, df and /proc. Disk space is checked where the services write (their units'
# ReadWritePaths); the consumers' progress files under their working directory.
export LC_ALL=C
printf 'load\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
awk '/^MemTotal:|^MemAvailable:/ {sub(":","",$1); print "mem\t" $1 "\t" $2}' /proc/meminfo
paths=/; rtm=; producer=
for u in "$@" $(systemctl list-units --all --plain --no-legend 'rtm-consumer@*' 2>/dev/null | awk '{print $1}'); do
  printf 'unit\t%s' "$u"
  systemctl show "$u" -p ActiveState,SubState,NRestarts,ActiveEnterTimestampMonotonic | while read -r prop; do printf '\t%s' "$prop"; done; printf '\n'
  paths="$paths $(systemctl show "$u" -p ReadWritePaths --value)"
  case "$u" in
    rtm-consumer@*) rtm=$(systemctl show "$u" -p WorkingDirectory --value);;
    rtm-producer.service) producer=$(systemctl show "$u" -p WorkingDirectory --value);;
  esac
done
printf 'now\t%s\n' "$(cut -d' ' -f1 /proc/uptime)"
for p in $(printf '%s\n' $paths | sort -u); do [ -d "$p" ] && df -Pk "$p" | awk -v p="$p" 'NR==2 {sub("%","",$5); print "disk\t" p "\t" $4 "\t" $5}'; done
# The producer's counts (producer.spool_dir is <WorkingDirectory>/producer), one JSON line.
if [ -n "$producer" ] && [ -r "$producer/producer/state.json" ]; then
  printf 'producer\t%s\n' "$(head -c 4096 "$producer/producer/state.json" | tr -d '\n')"
fi
[ -n "$rtm" ] || exit 0
# Each streaming job's own account of its newest micro-batch (rtm.consumer.runner writes it).
for f in "$rtm"/output/*/stream/progress.json; do
  [ -r "$f" ] || continue
  job=$(basename "$(dirname "$(dirname "$f")")")
  age=$(( $(date +%s) - $(stat -c %Y "$f") ))
  printf 'progress\t%s\t%s\t%s\n' "$job" "$age" "$(head -c 65536 "$f" | tr -d '\n')"
done
for d in "$rtm"/output/*/stream/alerts "$rtm"/output/*/stream/aggregates; do
  [ -d "$d" ] || continue
  newest=$(find "$d" -maxdepth 1 -type f -name 'part-*' -printf '%T@\n' | sort -n | tail -1)
  [ -n "$newest" ] || continue
  job=$(basename "$(dirname "$(dirname "$d")")")
  printf 'output\t%s\t%s\t%s\n' "$job" "$(basename "$d")" "$(( $(date +%s) - ${newest%.*} ))"
done
