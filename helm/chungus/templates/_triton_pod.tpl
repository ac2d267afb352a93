{{/*
Triton's pod template. Include with (dict "ctx" $ "role" "server"): "server" is a whole Triton
(StatefulSet or Deployment pod); with triton.multiNode, "leader" runs mpirun over its group and
serves, "worker" only hosts ranks (the leader starts them through kubectl exec).
*/}}
{{- define "chungus.tritonPodTemplate" -}}
{{- $ := .ctx }}
{{- $t := $.Values.triton }}
{{- $component := ternary "triton-worker" "triton" (eq .role "worker") }}
metadata:
  {{- include "chungus.podMetadata" (dict "ctx" $ "component" $component "v" $t) | nindent 2 }}
spec:
  {{- /* The leader starts ranks in its workers with kubectl exec (Role: pods/exec, this namespace). */}}
  {{- $sa := ternary (include "chungus.componentName" (dict "ctx" $ "component" "triton-launcher")) "" (eq .role "leader") }}
  {{- include "chungus.podCommon" (dict "ctx" $ "sa" $sa) | nindent 2 }}
  terminationGracePeriodSeconds: {{ include "chungus.tritonGrace" $ }}
  securityContext:
    {{- toYaml $t.podSecurityContext | nindent 4 }}
  {{- $init := include "chungus.tritonInitContainers" $ }}
  {{- if or $init $t.initContainers (eq .role "leader") }}
  initContainers:
    {{- with $init }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- if eq .role "leader" }}
    - name: kubectl
      image: {{ include "chungus.image" (dict "image" $t.multiNode.kubectlImage "default" "") | quote }}
      imagePullPolicy: {{ $t.multiNode.kubectlImage.pullPolicy }}
      command: ["sh", "-c", "cp \"$(command -v kubectl)\" /launcher/kubectl"]
      resources:
        requests:
          cpu: 10m
          memory: 32Mi
        limits:
          memory: 128Mi
      securityContext:
        {{- include "chungus.restrictedContainer" . | nindent 8 }}
      volumeMounts:
        - name: launcher-bin
          mountPath: /launcher
    {{- end }}
    {{- with $t.initContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  containers:
    - name: triton
      image: {{ include "chungus.image" (dict "image" $t.image "default" "") | quote }}
      imagePullPolicy: {{ $t.image.pullPolicy }}
      # NVIDIA's entrypoint stays in front (driver and CUDA compatibility checks): args only.
      {{- if eq .role "worker" }}
      # Ranks run here through kubectl exec from the leader; the container itself only waits.
      args: ["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
      {{- else if eq .role "leader" }}
      # The group's pods are <leader>-1 ... <leader>-(nodes-1); mpirun reaches them through
      # kubectl exec (OMPI_MCA_plm_rsh_agent), mpiWorldSize slots each. The MPMD ranks follow "$@".
      args:
        - sh
        - -c
        - |
          set -eu
          hosts="$POD_NAME:{{ $t.mpiWorldSize }}"
          i=1
          while [ "$i" -lt {{ $t.multiNode.nodes }} ]; do
            until /launcher/kubectl exec "$POD_NAME-$i" -c triton -- true 2>/dev/null; do
              echo "waiting for worker $POD_NAME-$i"; sleep 5
            done
            hosts="$hosts,$POD_NAME-$i:{{ $t.mpiWorldSize }}"
            i=$((i + 1))
          done
          exec mpirun --allow-run-as-root --host "$hosts" "$@"
        - mpirun
        {{- range include "chungus.tritonMpmd" $ | fromJsonArray }}
        - {{ . | quote }}
        {{- end }}
      {{- else }}
      args: {{ include "chungus.tritonArgs" $ }}
      {{- end }}
      {{- if ne .role "worker" }}
      ports:
        - name: http
          containerPort: {{ $t.ports.http }}
          protocol: TCP
        - name: grpc
          containerPort: {{ $t.ports.grpc }}
          protocol: TCP
        - name: metrics
          containerPort: {{ $t.ports.metrics }}
          protocol: TCP
      {{- end }}
      {{- if or $t.extraEnv (eq .role "leader") }}
      env:
        {{- if eq .role "leader" }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: OMPI_MCA_plm_rsh_agent
          value: /launcher/kubexec
        {{- end }}
        {{- with $t.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- if ne .role "worker" }}
      startupProbe:
        {{- toYaml $t.startupProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml $t.readinessProbe | nindent 8 }}
      livenessProbe:
        {{- toYaml $t.livenessProbe | nindent 8 }}
      {{- end }}
      {{- if $t.preStopSleepSeconds }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ $t.preStopSleepSeconds }}"]
      {{- end }}
      resources:
        {{- include "chungus.tritonResources" $ | nindent 8 }}
      securityContext:
        {{- toYaml $t.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "chungus.tritonModelMount" $ | nindent 8 }}
        - name: shm
          mountPath: /dev/shm
        {{- if eq .role "leader" }}
        - name: launcher-bin
          mountPath: /launcher/kubectl
          subPath: kubectl
        - name: launcher
          mountPath: /launcher/kubexec
          subPath: kubexec
        {{- end }}
        {{- with $t.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- with $t.sidecars }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumes:
    {{- include "chungus.tritonModelVolume" $ | nindent 4 }}
    {{- if has $.Values.engines.source (list "s3" "oci") }}
    {{- include "chungus.fetchVolumes" $ | nindent 4 }}
    {{- end }}
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $t.shmSizeLimit }}
    {{- if eq .role "leader" }}
    - name: launcher-bin
      emptyDir: {}
    - name: launcher
      configMap:
        name: {{ include "chungus.componentName" (dict "ctx" $ "component" "triton-launcher") }}
        defaultMode: 0555
    {{- end }}
    {{- with $t.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- include "chungus.podScheduling" (dict "v" $t "affinity" (include "chungus.tritonAffinity" $)) | trim | nindent 2 }}
{{- end }}
