{{- define "nvdp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default (printf "v%s" .Chart.AppVersion)) -}}
{{- end -}}

{{/* Whether any embedded config asks for MPS sharing (upstream then deploys the MPS control daemon) */}}
{{- define "nvdp.hasMps" -}}
{{- $mps := false -}}
{{- range $name, $contents := .Values.config.map -}}
{{- $config := $contents | fromYaml -}}
{{- if and $config.sharing $config.sharing.mps -}}{{- $mps = true -}}{{- end -}}
{{- end -}}
{{- $mps -}}
{{- end -}}

{{- define "nvdp.podSpecCommon" -}}
{{- if .Values.runtimeClassName }}
runtimeClassName: {{ .Values.runtimeClassName }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{ toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
