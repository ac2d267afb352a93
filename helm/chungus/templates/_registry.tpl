{{/*
Where the gateway reads its registry. values: the registry ConfigMap mounted as a folder.
modelStore / engines: the build output (registry.toml next to models/), mounted or copied.
*/}}
{{- define "chungus.registryPath" -}}
{{- if eq .Values.gateway.registry.source "values" -}}
/etc/chungus/registry/registry.toml
{{- else -}}
/etc/chungus/store/registry.toml
{{- end }}
{{- end }}

{{/*
The ConfigMap's files: gateway.registry.toml as given when set, else registry.toml rendered from
gateway.registry.models (each chatTemplate stored next to it as chat_template_<i>.jinja).
*/}}
{{- define "chungus.tomlValue" -}}
{{- toJson . | replace "\\u003c" "<" | replace "\\u003e" ">" | replace "\\u0026" "&" }}
{{- end }}

{{- define "chungus.registryFiles" -}}
{{- $r := .Values.gateway.registry }}
{{- $files := dict }}
{{- if $r.toml }}
{{- $_ := set $files "registry.toml" $r.toml }}
{{- else }}
{{- $lines := list "# Rendered by the chungus Helm chart from gateway.registry.models." }}
{{- range $i, $m := required "gateway.registry.models (or .toml, or .existingConfigMap) is required" $r.models }}
{{- $lines = append $lines "" }}
{{- $lines = append $lines "[[models]]" }}
{{- range $key := keys $m | sortAlpha }}
{{- if and $m.chatTemplate (eq $key "chat_template") }}
{{- fail (printf "gateway.registry.models[%d]: set chatTemplate or chat_template, not both" $i) }}
{{- end }}
{{- if not (has $key (list "chatTemplate" "image_processor")) }}
{{- $lines = append $lines (printf "%s = %s" $key (include "chungus.tomlValue" (index $m $key))) }}
{{- end }}
{{- end }}
{{- with $m.chatTemplate }}
{{- $name := printf "chat_template_%d.jinja" $i }}
{{- $lines = append $lines (printf "chat_template = %s" (toJson $name)) }}
{{- $_ := set $files $name . }}
{{- end }}
{{- with $m.image_processor }}
{{- $lines = append $lines "[models.image_processor]" }}
{{- range $key := keys . | sortAlpha }}
{{- $lines = append $lines (printf "%s = %s" $key (include "chungus.tomlValue" (index $m.image_processor $key))) }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set $files "registry.toml" (printf "%s\n" (join "\n" $lines)) }}
{{- end }}
{{- toYaml $files }}
{{- end }}
