{{/*
Expand the name of the chart.
*/}}
{{- define "chungus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name (63 characters: the DNS label limit).
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "chungus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the chart label.
*/}}
{{- define "chungus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. helm.sh/chart changes on every upgrade, so it never enters a selector.
*/}}
{{- define "chungus.labels" -}}
helm.sh/chart: {{ include "chungus.chart" . }}
{{ include "chungus.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "chungus.name" . }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "chungus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chungus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component: include with (dict "ctx" $ "component" "gateway").
*/}}
{{- define "chungus.componentLabels" -}}
{{ include "chungus.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "chungus.componentSelectorLabels" -}}
{{ include "chungus.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of one component's objects: include with (dict "ctx" $ "component" "gateway"). At most 52
characters: a StatefulSet's pods carry the label controller-revision-hash=<name>-<10-char hash>,
and label values stop at 63 (kubernetes/kubernetes#64023). "max" lowers the budget (the
LeaderWorkerSet's worker StatefulSets are named <name>-<group>, their pods <name>-<group>-<i>).
*/}}
{{- define "chungus.componentName" -}}
{{- $budget := sub (default 52 .max) (add1 (len .component)) }}
{{- printf "%s-%s" (include "chungus.fullname" .ctx | trunc (int $budget) | trimSuffix "-") .component }}
{{- end }}

{{/*
The service account the pods run as.
*/}}
{{- define "chungus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chungus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: include with (dict "image" .Values.x.image "default" "tag").
*/}}
{{- define "chungus.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .default .image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
The Secret holding the bootstrap admin key, and its key.
*/}}
{{- define "chungus.adminSecretName" -}}
{{- default (include "chungus.componentName" (dict "ctx" . "component" "gateway")) .Values.gateway.auth.existingSecret }}
{{- end }}

{{/*
A secret value: the one given, else the one already in the cluster (lookup), else a new random
one. Memoized per render (in .Values._chungusGenerated), so the Secret and the checksum that rolls
the gateway see the same value. `helm template` and GitOps renderers cannot look up: they get a
new value each time, which is why existingSecret is the GitOps route (docs/helm.md).
Include with (dict "ctx" $ "id" "admin" "given" "..." "secret" "name" "key" "k" "prefix" "sk-chungus-" "length" 40).
*/}}
{{- define "chungus.secretValue" -}}
{{- $cache := default (dict) .ctx.Values._chungusGenerated }}
{{- if not (hasKey $cache .id) }}
{{- $value := .given }}
{{- if not $value }}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secret }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- $value = index $existing.data .key | b64dec }}
{{- else }}
{{- $value = printf "%s%s" (default "" .prefix) (randAlphaNum (int .length)) }}
{{- end }}
{{- end }}
{{- $_ := set $cache .id $value }}
{{- $_ := set .ctx.Values "_chungusGenerated" $cache }}
{{- end }}
{{- index $cache .id }}
{{- end }}

{{- define "chungus.adminKey" -}}
{{- include "chungus.secretValue" (dict "ctx" . "id" "admin" "given" .Values.gateway.auth.adminKey "secret" (include "chungus.adminSecretName" .) "key" .Values.gateway.auth.existingSecretKey "prefix" "sk-chungus-" "length" 40) }}
{{- end }}

{{/*
The Secret holding the bundled PostgreSQL's password.
*/}}
{{- define "chungus.postgresqlSecretName" -}}
{{- default (include "chungus.componentName" (dict "ctx" . "component" "postgresql")) .Values.postgresql.auth.existingSecret }}
{{- end }}

{{- define "chungus.postgresqlPassword" -}}
{{- include "chungus.secretValue" (dict "ctx" . "id" "postgresql" "given" .Values.postgresql.auth.password "secret" (include "chungus.postgresqlSecretName" .) "key" .Values.postgresql.auth.secretKey "length" 32) }}
{{- end }}

{{/*
The Secret holding the bundled Redis' password.
*/}}
{{- define "chungus.redisSecretName" -}}
{{- default (include "chungus.componentName" (dict "ctx" . "component" "redis")) .Values.redis.auth.existingSecret }}
{{- end }}

{{- define "chungus.redisPassword" -}}
{{- include "chungus.secretValue" (dict "ctx" . "id" "redis" "given" .Values.redis.auth.password "secret" (include "chungus.redisSecretName" .) "key" .Values.redis.auth.secretKey "length" 32) }}
{{- end }}

{{/*
Annotations of a Secret the chart generates: kept on uninstall and rollback, so that a reinstall
does not lock the gateway out of PostgreSQL (which reads its password only at first start).
*/}}
{{- define "chungus.secretAnnotations" -}}
helm.sh/resource-policy: keep
{{- end }}

{{/*
What the gateway reads from Secrets, hashed: its pods roll when any of it changes. Secrets made
outside the chart are represented by their names and gateway.secretsRevision.
*/}}
{{- define "chungus.secretsChecksum" -}}
{{- $parts := list .Values.gateway.secretsRevision }}
{{- if .Values.gateway.auth.existingSecret }}
{{- $parts = append $parts .Values.gateway.auth.existingSecret }}
{{- else }}
{{- $parts = append $parts (include "chungus.adminKey" .) }}
{{- end }}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.auth.existingSecret) }}
{{- $parts = append $parts (include "chungus.postgresqlPassword" .) }}
{{- end }}
{{- if and .Values.redis.enabled (not .Values.redis.auth.existingSecret) }}
{{- $parts = append $parts (include "chungus.redisPassword" .) }}
{{- end }}
{{- $parts = concat $parts (list (toJson .Values.gateway.database) (toJson .Values.redis.external) .Values.postgresql.auth.existingSecret .Values.redis.auth.existingSecret) }}
{{- join "\n" $parts | sha256sum }}
{{- end }}

{{/*
CHUNGUS_TRITON_URLS: the list given, else the chart's headless Triton Service as one
dns://<service>.<namespace>.svc.<clusterDomain>:<grpc> entry, which the gateway resolves
periodically to every pod address (pods come and go with the HPA and with rollouts).
*/}}
{{- define "chungus.tritonUrls" -}}
{{- if .Values.gateway.tritonUrls }}
{{- join "," .Values.gateway.tritonUrls }}
{{- else if .Values.triton.enabled }}
{{- printf "dns://%s.%s.svc.%s:%d" (include "chungus.componentName" (dict "ctx" . "component" "triton")) .Release.Namespace .Values.clusterDomain (int .Values.triton.ports.grpc) }}
{{- else }}
{{- fail "set gateway.tritonUrls, or triton.enabled=true" }}
{{- end }}
{{- end }}

{{/*
Folder inside the model store volume: "" or "sub/path/" (always a trailing slash).
*/}}
{{- define "chungus.modelStorePrefix" -}}
{{- with trimAll "/" .Values.modelStore.subPath }}{{ . }}/{{ end }}
{{- end }}

{{/*
spec.replicas of a workload: the value when no HPA manages it; with an HPA, the live object's
current count (an upgrade then leaves it as the HPA set it, while removing the field would reset
it to 1 and reload pods), or nothing where there is no live object or no cluster to ask
(`helm template`, GitOps renderers). Include with (dict "ctx" $ "hpa" bool "replicas" n
"apiVersion" "apps/v1" "kind" "Deployment" "name" "...").
*/}}
{{- define "chungus.replicas" -}}
{{- if not .hpa }}
replicas: {{ .replicas }}
{{- else }}
{{- $live := lookup .apiVersion .kind .ctx.Release.Namespace .name }}
{{- if and $live $live.spec $live.spec.replicas }}
replicas: {{ $live.spec.replicas }}
{{- end }}
{{- end }}
{{- end }}
