{{/*
The controller's annotations, derived from the gateway's own limits: the body limit from
max_body_bytes (so that a large image chat gets the gateway's OpenAI-shaped 413, not the
controller's HTML one), read/send timeouts from triton_timeout_s (a stream may last that long),
and no response buffering (SSE flows token by token).
*/}}
{{- define "chungus.ingressAnnotations" -}}
{{- $bytes := int64 (default 20971520 .Values.gateway.config.max_body_bytes) }}
{{- /* One MiB above the gateway's limit: bodies just over it still reach the gateway's 413. */}}
{{- $mib := add1 (div (add $bytes 1048575) 1048576) }}
{{- $timeout := include "chungus.streamTimeout" . | int }}
{{- $c := .Values.ingress.controller }}
{{- if eq $c "ingress-nginx" }}
nginx.ingress.kubernetes.io/proxy-body-size: {{ printf "%dm" $mib | quote }}
nginx.ingress.kubernetes.io/proxy-read-timeout: {{ $timeout | quote }}
nginx.ingress.kubernetes.io/proxy-send-timeout: {{ $timeout | quote }}
nginx.ingress.kubernetes.io/proxy-buffering: "off"
{{- else if eq $c "nginx-inc" }}
nginx.org/client-max-body-size: {{ printf "%dm" $mib | quote }}
nginx.org/proxy-read-timeout: {{ printf "%ds" $timeout | quote }}
nginx.org/proxy-send-timeout: {{ printf "%ds" $timeout | quote }}
nginx.org/proxy-buffering: "false"
{{- else if eq $c "haproxy" }}
haproxy.org/timeout-server: {{ printf "%ds" $timeout | quote }}
{{- end }}
{{- end }}
