{{/*
The hash of the build Job's input: names the Job (a new config is a new Job) and is the marker
the Job writes when done, which Triton pods wait for.
*/}}
{{- define "chungus.buildHash" -}}
{{- dict "config" .Values.engines.build.config "image" (include "chungus.image" (dict "image" .Values.triton.image "default" "")) "out" .Values.modelStore.subPath | toJson | sha256sum | trunc 10 }}
{{- end }}

{{/*
The volume named "model-store" that Triton mounts at /models: the claim (volume, build) or a
pod-local copy (s3, oci).
*/}}
{{- define "chungus.tritonModelVolume" -}}
- name: model-store
{{- if has .Values.engines.source (list "volume" "build") }}
  persistentVolumeClaim:
    claimName: {{ required "modelStore.existingClaim is required" .Values.modelStore.existingClaim }}
    readOnly: true
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.engines.cacheSizeLimit }}
{{- end }}
{{- end }}

{{- define "chungus.tritonModelMount" -}}
- name: model-store
  mountPath: /models
  {{- if has .Values.engines.source (list "volume" "build") }}
  {{- with trimAll "/" .Values.modelStore.subPath }}
  subPath: {{ . }}
  {{- end }}
  readOnly: true
  {{- end }}
{{- end }}

{{/*
An init container that copies the build output from engines.s3 / engines.oci into the volume
"dest" (mounted at /dest). Include with (dict "ctx" $ "what" "all") or "what" "registry" (the
gateway: registry.toml and models/ only).
*/}}
{{- define "chungus.fetchContainer" -}}
{{- $e := .ctx.Values.engines }}
- name: {{ ternary "fetch-engines" "fetch-registry" (eq .what "all") }}
  {{- if eq $e.source "s3" }}
  image: {{ include "chungus.image" (dict "image" $e.s3.image "default" "") | quote }}
  imagePullPolicy: {{ $e.s3.image.pullPolicy }}
  command: ["aws"]
  {{- $args := list "s3" "sync" (required "engines.s3.url is required with engines.source=s3" $e.s3.url) "/dest" "--only-show-errors" "--no-progress" }}
  {{- with $e.s3.endpoint }}
  {{- $args = concat $args (list "--endpoint-url" .) }}
  {{- end }}
  {{- if ne .what "all" }}
  {{- $args = concat $args (list "--exclude" "model_repository/*") }}
  {{- end }}
  args: {{ toJson $args }}
  env:
    - name: AWS_DEFAULT_REGION
      value: {{ $e.s3.region | quote }}
    - name: HOME
      value: /tmp
  {{- with $e.s3.existingSecret }}
  envFrom:
    - secretRef:
        name: {{ . }}
  {{- end }}
  {{- else if eq $e.source "oci" }}
  image: {{ include "chungus.image" (dict "image" $e.oci.image "default" "") | quote }}
  imagePullPolicy: {{ $e.oci.image.pullPolicy }}
  command: ["oras"]
  {{- $ref := ternary (required "engines.oci.reference is required with engines.source=oci" $e.oci.reference) (required "engines.oci.gatewayReference is required with gateway.registry.source=engines and engines.source=oci" $e.oci.gatewayReference) (eq .what "all") }}
  {{- $args := list "pull" $ref "--output" "/dest" }}
  {{- if $e.oci.existingSecret }}
  {{- $args = concat $args (list "--registry-config" "/oci-auth/.dockerconfigjson") }}
  {{- end }}
  args: {{ toJson $args }}
  env:
    - name: HOME
      value: /tmp
  {{- else }}
  {{- fail (printf "gateway.registry.source=engines needs engines.source s3 or oci (it is %s)" $e.source) }}
  {{- end }}
  resources:
    {{- toYaml $e.fetchResources | nindent 4 }}
  securityContext:
    {{- include "chungus.restrictedContainer" . | nindent 4 }}
  volumeMounts:
    - name: {{ ternary "model-store" "registry-store" (eq .what "all") }}
      mountPath: /dest
    - name: fetch-tmp
      mountPath: /tmp
    {{- if and (eq $e.source "oci") $e.oci.existingSecret }}
    - name: oci-auth
      mountPath: /oci-auth
      readOnly: true
    {{- end }}
{{- end }}

{{/*
Volumes the fetch container needs besides its destination.
*/}}
{{- define "chungus.fetchVolumes" -}}
- name: fetch-tmp
  emptyDir: {}
{{- if and (eq .Values.engines.source "oci") .Values.engines.oci.existingSecret }}
- name: oci-auth
  secret:
    secretName: {{ .Values.engines.oci.existingSecret }}
{{- end }}
{{- end }}

{{/*
Triton's init containers: wait for the build Job's marker, or copy the engines in.
*/}}
{{- define "chungus.tritonInitContainers" -}}
{{- if eq .Values.engines.source "build" }}
- name: wait-for-build
  image: {{ include "chungus.image" (dict "image" .Values.triton.image "default" "") | quote }}
  imagePullPolicy: {{ .Values.triton.image.pullPolicy }}
  command: ["sh", "-c"]
  # The build Job writes its input's hash here when it has finished.
  args:
    - until [ "$(cat /models/.chungus-build 2>/dev/null)" = "{{ include "chungus.buildHash" . }}" ]; do echo "waiting for the engine build Job"; sleep 15; done
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  securityContext:
    {{- include "chungus.restrictedContainer" . | nindent 4 }}
  volumeMounts:
    {{- include "chungus.tritonModelMount" . | nindent 4 }}
{{- else if has .Values.engines.source (list "s3" "oci") }}
{{- include "chungus.fetchContainer" (dict "ctx" . "what" "all") }}
{{- end }}
{{- end }}
