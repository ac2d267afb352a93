{{/*
Triton's command line. One rank: plain tritonserver. Several ranks (engine-path tensor/pipeline
parallelism): mpirun in the foreground, one tritonserver per GPU, as NVIDIA's
launch_triton_server.py builds it (that script backgrounds mpirun and exits, which would end the
container). Ranks above 0 load only the TensorRT-LLM models and never open their ports.
*/}}
{{- define "chungus.tritonArgs" -}}
{{- $t := .Values.triton }}
{{- $repo := printf "/models/%s" (trimAll "/" $t.modelRepository) }}
{{- $common := list (printf "--model-repository=%s" $repo) (printf "--http-port=%d" (int $t.ports.http)) (printf "--grpc-port=%d" (int $t.ports.grpc)) (printf "--metrics-port=%d" (int $t.ports.metrics)) }}
{{- $args := list }}
{{- if le (int $t.mpiWorldSize) 1 }}
{{- $args = concat (list "tritonserver") $common $t.extraArgs }}
{{- else }}
{{- if gt (int $t.mpiWorldSize) (int $t.gpusPerPod) }}
{{- fail "triton.mpiWorldSize (one rank per GPU) cannot exceed triton.gpusPerPod" }}
{{- end }}
{{- $args = list "mpirun" "--allow-run-as-root" }}
{{- range $rank := until (int $t.mpiWorldSize) }}
{{- if $rank }}
{{- $args = append $args ":" }}
{{- end }}
{{- $args = concat $args (list "-n" "1" "tritonserver") $common }}
{{- $args = concat $args (list "--disable-auto-complete-config" (printf "--backend-config=python,shm-region-prefix-name=prefix%d_" $rank)) }}
{{- if $rank }}
{{- $args = append $args "--model-control-mode=explicit" }}
{{- range $t.tensorrtLlmModels }}
{{- $args = append $args (printf "--load-model=%s" .) }}
{{- end }}
{{- end }}
{{- $args = concat $args $t.extraArgs }}
{{- end }}
{{- end }}
{{- toJson $args }}
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
Triton's resources: the values' resources plus nvidia.com/gpu in requests and limits.
*/}}
{{- define "chungus.tritonResources" -}}
{{- $resources := deepCopy .Values.triton.resources }}
{{- $gpus := int .Values.triton.gpusPerPod }}
{{- if $gpus }}
{{- range $kind := list "requests" "limits" }}
{{- $section := default (dict) (get $resources $kind) }}
{{- $_ := set $section "nvidia.com/gpu" $gpus }}
{{- $_ := set $resources $kind $section }}
{{- end }}
{{- end }}
{{- toYaml $resources }}
{{- end }}
