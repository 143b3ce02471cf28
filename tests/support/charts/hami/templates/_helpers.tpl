{{/* registry/repository:tag, the global registry winning over the image's own (as HAMi's chart does) */}}
{{- define "hami.image" -}}
{{- $registry := .global.imageRegistry | default .image.registry -}}
{{- printf "%s/%s:%s" $registry .image.repository .tag -}}
{{- end -}}

{{/* The kube-scheduler tag: the one given, else the cluster's version without a distribution suffix */}}
{{- define "hami.kubeSchedulerTag" -}}
{{- if .Values.scheduler.kubeScheduler.image.tag -}}
{{- .Values.scheduler.kubeScheduler.image.tag | trim -}}
{{- else -}}
{{- regexFind "^v[0-9]+\\.[0-9]+\\.[0-9]+" .Capabilities.KubeVersion.Version -}}
{{- end -}}
{{- end -}}
