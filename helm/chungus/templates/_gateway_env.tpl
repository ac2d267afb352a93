{{/*
The gateway's environment: CHUNGUS_* settings (gateway/settings.py), the admin key, the database
and Redis URLs. Order matters: $(VAR) only expands variables defined above it.
*/}}
{{- define "chungus.gatewayEnv" -}}
{{- $settings := dict "host" "0.0.0.0" }}
{{- range $name, $value := .Values.gateway.config }}
{{- $_ := set $settings $name $value }}
{{- end }}
{{- $_ := set $settings "port" .Values.gateway.containerPort }}
{{- $_ := set $settings "registry_path" (include "chungus.registryPath" .) }}
{{- range $name := keys $settings | sortAlpha }}
{{- $value := get $settings $name }}
{{- if and (kindIs "float64" $value) (eq (floor $value) $value) }}
{{- $value = int64 $value }}
{{- end }}
- name: CHUNGUS_{{ upper $name }}
  value: {{ $value | toString | quote }}
{{- end }}
- name: CHUNGUS_TRITON_URLS
  value: {{ include "chungus.tritonUrls" . | quote }}
- name: CHUNGUS_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "chungus.adminSecretName" . }}
      key: {{ .Values.gateway.auth.existingSecretKey }}
{{- with .Values.gateway.database }}
{{- if .existingSecret }}
- name: CHUNGUS_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .existingSecretKey }}
{{- else if .url }}
- name: CHUNGUS_DATABASE_URL
  value: {{ .url | quote }}
{{- else if $.Values.postgresql.enabled }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "chungus.postgresqlSecretName" $ }}
      key: {{ $.Values.postgresql.auth.secretKey }}
- name: CHUNGUS_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://%s:$(POSTGRES_PASSWORD)@%s:5432/%s" $.Values.postgresql.auth.username (include "chungus.componentName" (dict "ctx" $ "component" "postgresql")) $.Values.postgresql.auth.database | quote }}
{{- else }}
- name: CHUNGUS_DATABASE_URL
  value: "sqlite+aiosqlite:////data/chungus.db"
{{- end }}
{{- end }}
{{- with .Values.redis }}
{{- if .enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "chungus.redisSecretName" $ }}
      key: {{ .auth.secretKey }}
- name: CHUNGUS_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "chungus.componentName" (dict "ctx" $ "component" "redis")) | quote }}
{{- else if .external.existingSecret }}
- name: CHUNGUS_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .external.existingSecret }}
      key: {{ .external.existingSecretKey }}
{{- else if .external.url }}
- name: CHUNGUS_REDIS_URL
  value: {{ .external.url | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Gateway replicas above one need shared stores: keys in PostgreSQL (bundled or external) and
limits in Redis. One replica with SQLite is allowed (keys live as long as the pod).
*/}}
{{- define "chungus.checkGatewayStores" -}}
{{- $g := .Values.gateway }}
{{- $replicas := ternary (int $g.autoscaling.maxReplicas) (int $g.replicaCount) $g.autoscaling.enabled }}
{{- if gt $replicas 1 }}
{{- if not (or .Values.postgresql.enabled $g.database.url $g.database.existingSecret) }}
{{- fail (printf "gateway: %d replicas need a shared key store: set postgresql.enabled=true or gateway.database.url / .existingSecret (or run one replica)" $replicas) }}
{{- end }}
{{- if not (or .Values.redis.enabled .Values.redis.external.url .Values.redis.external.existingSecret) }}
{{- fail (printf "gateway: %d replicas need a shared Redis for rate limits: set redis.enabled=true or redis.external.url / .existingSecret (or run one replica)" $replicas) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Seconds: the gateway's whole-generation timeout (also the Ingress' and Triton's).
*/}}
{{- define "chungus.streamTimeout" -}}
{{- int (default 600 .Values.gateway.config.triton_timeout_s) }}
{{- end }}

{{- define "chungus.gatewayGrace" -}}
{{- if kindIs "invalid" .Values.gateway.terminationGracePeriodSeconds }}
{{- add (int .Values.gateway.preStopSleepSeconds) (include "chungus.streamTimeout" . | int) 20 }}
{{- else }}
{{- int .Values.gateway.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}
