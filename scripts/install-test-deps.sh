#!/usr/bin/env bash
# Installs the real peers the tests run against. Idempotent: does nothing when all are present.
# Debian services must never start on install, so a policy-rc.d that refuses is put in place.
set -euo pipefail

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-node-exporter >/dev/null || need_apt+=(prometheus-node-exporter)
command -v victoria-metrics >/dev/null || need_apt+=(victoria-metrics)

if [ ${#need_apt[@]} -gt 0 ]; then
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
	fi
	echo "installing test peers: ${need_apt[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
	# A package may still have started its daemon through another path; tests need the ports.
	for svc in prometheus prometheus-node-exporter victoria-metrics; do
		pkill -x "$svc" 2>/dev/null || true
	done
fi

if ! python3 -c 'import prometheus_client, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http' 2>/dev/null; then
	echo "installing python test clients"
	python3 -m pip install -q prometheus-client opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
fi
