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
Name of one component's objects: include with (dict "ctx" $ "component" "gateway").
*/}}
{{- define "chungus.componentName" -}}
{{- printf "%s-%s" (include "chungus.fullname" .ctx | trunc 52 | trimSuffix "-") .component }}
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
The admin key to store: the value given, else the one already in the cluster, else a new one.
*/}}
{{- define "chungus.adminKey" -}}
{{- if .Values.gateway.auth.adminKey }}
{{- .Values.gateway.auth.adminKey }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "chungus.adminSecretName" .) }}
{{- if and $existing (index $existing.data .Values.gateway.auth.existingSecretKey) }}
{{- index $existing.data .Values.gateway.auth.existingSecretKey | b64dec }}
{{- else }}
{{- printf "sk-chungus-%s" (randAlphaNum 40) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Secret holding the bundled PostgreSQL's password.
*/}}
{{- define "chungus.postgresqlSecretName" -}}
{{- default (include "chungus.componentName" (dict "ctx" . "component" "postgresql")) .Values.postgresql.auth.existingSecret }}
{{- end }}

{{- define "chungus.postgresqlPassword" -}}
{{- if .Values.postgresql.auth.password }}
{{- .Values.postgresql.auth.password }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "chungus.postgresqlSecretName" .) }}
{{- if and $existing (index $existing.data .Values.postgresql.auth.secretKey) }}
{{- index $existing.data .Values.postgresql.auth.secretKey | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
How many Triton pods the gateway may ever see: the HPA's maximum when it is on.
*/}}
{{- define "chungus.tritonMaxPods" -}}
{{- if .Values.autoscaling.enabled }}
{{- max (int .Values.triton.replicaCount) (int .Values.autoscaling.maxReplicas) }}
{{- else }}
{{- int .Values.triton.replicaCount }}
{{- end }}
{{- end }}

{{/*
CHUNGUS_TRITON_URLS: the list given, else one gRPC endpoint per Triton pod. StatefulSet pods have
stable DNS names under the headless Service; the gateway skips endpoints that are not ready (pods
the HPA has not started yet) and balances over the rest by least outstanding requests.
*/}}
{{- define "chungus.tritonUrls" -}}
{{- if .Values.gateway.tritonUrls }}
{{- join "," .Values.gateway.tritonUrls }}
{{- else if .Values.triton.enabled }}
{{- $name := include "chungus.componentName" (dict "ctx" . "component" "triton") }}
{{- $urls := list }}
{{- range $i := until (include "chungus.tritonMaxPods" . | int) }}
{{- $urls = append $urls (printf "%s-%d.%s.%s.svc:%d" $name $i $name $.Release.Namespace (int $.Values.triton.ports.grpc)) }}
{{- end }}
{{- join "," $urls }}
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
