{{/*
One rank's tritonserver arguments: include with (dict "ctx" $ "rank" 0 "ranks" 2). Rank 0 is the
server: it loads every model, opens the ports and takes triton.extraArgs. Ranks above 0 (engine
path, tp * pp > 1) load only the TensorRT-LLM models; TensorRT-LLM keeps them in its worker loop,
so they never reach the point of opening ports. As NVIDIA's launch_triton_server.py.
*/}}
{{- define "chungus.tritonRankArgs" -}}
{{- $t := .ctx.Values.triton }}
{{- $args := list "tritonserver" (printf "--model-repository=/models/%s" (trimAll "/" $t.modelRepository)) (printf "--http-port=%d" (int $t.ports.http)) (printf "--grpc-port=%d" (int $t.ports.grpc)) (printf "--metrics-port=%d" (int $t.ports.metrics)) (printf "--exit-timeout-secs=%s" (include "chungus.tritonExitTimeout" .ctx)) }}
{{- if gt (int .ranks) 1 }}
{{- $args = concat $args (list "--disable-auto-complete-config" (printf "--backend-config=python,shm-region-prefix-name=prefix%d_" (int .rank))) }}
{{- end }}
{{- if .rank }}
{{- $args = append $args "--model-control-mode=explicit" }}
{{- range $t.tensorrtLlmModels }}
{{- $args = append $args (printf "--load-model=%s" .) }}
{{- end }}
{{- end }}
{{- $args = concat $args $t.allRanksArgs }}
{{- if not .rank }}
{{- $args = concat $args $t.extraArgs }}
{{- end }}
{{- toJson $args }}
{{- end }}

{{/*
MPI ranks in all: mpiWorldSize per pod, times the pods of a group with multiNode.
*/}}
{{- define "chungus.tritonRanks" -}}
{{- $t := .Values.triton }}
{{- if gt (int $t.mpiWorldSize) (int $t.gpusPerPod) }}
{{- fail "triton.mpiWorldSize (one rank per GPU) cannot exceed triton.gpusPerPod" }}
{{- end }}
{{- mul (int $t.mpiWorldSize) (ternary (int $t.multiNode.nodes) 1 $t.multiNode.enabled) }}
{{- end }}

{{/*
The MPMD part of mpirun: "-n 1 <rank 0 args> : -n 1 <rank 1 args> ..." (a JSON list).
*/}}
{{- define "chungus.tritonMpmd" -}}
{{- $ranks := include "chungus.tritonRanks" . | int }}
{{- $args := list }}
{{- range $rank := until $ranks }}
{{- if $rank }}
{{- $args = append $args ":" }}
{{- end }}
{{- $args = concat $args (list "-n" "1") (include "chungus.tritonRankArgs" (dict "ctx" $ "rank" $rank "ranks" $ranks) | fromJsonArray) }}
{{- end }}
{{- toJson $args }}
{{- end }}

{{/*
Triton's command line in a single-node pod. One rank: plain tritonserver. Several ranks: mpirun
in the foreground, one tritonserver per GPU (launch_triton_server.py backgrounds mpirun and exits,
which would end the container).
*/}}
{{- define "chungus.tritonArgs" -}}
{{- $ranks := include "chungus.tritonRanks" . | int }}
{{- if le $ranks 1 }}
{{- include "chungus.tritonRankArgs" (dict "ctx" . "rank" 0 "ranks" 1) }}
{{- else }}
{{- concat (list "mpirun" "--allow-run-as-root") (include "chungus.tritonMpmd" . | fromJsonArray) | toJson }}
{{- end }}
{{- end }}

{{- define "chungus.tritonExitTimeout" -}}
{{- if kindIs "invalid" .Values.triton.exitTimeoutSeconds }}
{{- include "chungus.streamTimeout" . }}
{{- else }}
{{- int .Values.triton.exitTimeoutSeconds }}
{{- end }}
{{- end }}

{{- define "chungus.tritonGrace" -}}
{{- if kindIs "invalid" .Values.triton.terminationGracePeriodSeconds }}
{{- add (int .Values.triton.preStopSleepSeconds) (include "chungus.tritonExitTimeout" . | int) 20 }}
{{- else }}
{{- int .Values.triton.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Triton's affinity: the values' affinity, plus a node affinity on the GPU product when asked.
*/}}
{{- define "chungus.tritonAffinity" -}}
{{- $affinity := deepCopy .Values.triton.affinity }}
{{- with .Values.triton.gpuProducts }}
{{- if hasKey $affinity "nodeAffinity" }}
{{- fail "set either triton.gpuProducts or triton.affinity.nodeAffinity, not both" }}
{{- end }}
{{- $term := dict "matchExpressions" (list (dict "key" "nvidia.com/gpu.product" "operator" "In" "values" .)) }}
{{- $_ := set $affinity "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" (list $term))) }}
{{- end }}
{{- if $affinity }}
{{- toYaml $affinity }}
{{- end }}
{{- end }}

{{/*
Triton's resources: nvidia.com/gpu from gpusPerPod; CPU and memory scale with the GPUs unless set.
*/}}
{{- define "chungus.tritonResources" -}}
{{- $resources := deepCopy .Values.triton.resources }}
{{- $gpus := int .Values.triton.gpusPerPod }}
{{- $perPod := max $gpus 1 }}
{{- $requests := default (dict) (get $resources "requests") }}
{{- $limits := default (dict) (get $resources "limits") }}
{{- if not (hasKey $requests "cpu") }}
{{- $_ := set $requests "cpu" (toString (mul (int .Values.triton.cpuPerGpu) $perPod)) }}
{{- end }}
{{- if not (hasKey $requests "memory") }}
{{- $_ := set $requests "memory" (printf "%dGi" (mul (int .Values.triton.memoryPerGpuGi) $perPod)) }}
{{- end }}
{{- if not (hasKey $limits "memory") }}
{{- $_ := set $limits "memory" (printf "%dGi" (mul (int .Values.triton.memoryPerGpuGi) $perPod 2)) }}
{{- end }}
{{- if $gpus }}
{{- $_ := set $requests "nvidia.com/gpu" $gpus }}
{{- $_ := set $limits "nvidia.com/gpu" $gpus }}
{{- end }}
{{- $_ := set $resources "requests" $requests }}
{{- $_ := set $resources "limits" $limits }}
{{- toYaml $resources }}
{{- end }}

{{/*
The Triton workload's kind and name. A LeaderWorkerSet's name gets a smaller budget: its worker
StatefulSets are <name>-<group> and their pods' revision labels <name>-<group>-<hash>.
*/}}
{{- define "chungus.tritonKind" -}}
{{- if .Values.triton.multiNode.enabled }}LeaderWorkerSet{{ else }}{{ .Values.triton.workload }}{{ end }}
{{- end }}

{{- define "chungus.tritonName" -}}
{{- include "chungus.componentName" (dict "ctx" . "component" "triton" "max" (ternary 40 52 .Values.triton.multiNode.enabled)) }}
{{- end }}
