apiVersion: nvidia.com/v1
kind: ClusterPolicy
metadata:
  name: cluster-policy
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  operator:
    defaultRuntime: {{ .Values.operator.defaultRuntime }}
  daemonsets:
    {{- with .Values.daemonsets.tolerations }}
    tolerations: {{ toYaml . | nindent 6 }}
    {{- end }}
  mig:
    strategy: {{ .Values.mig.strategy }}
  driver:
    enabled: {{ .Values.driver.enabled }}
  toolkit:
    enabled: {{ .Values.toolkit.enabled }}
  devicePlugin:
    enabled: {{ .Values.devicePlugin.enabled }}
    {{- if .Values.devicePlugin.config.name }}
    config:
      name: {{ .Values.devicePlugin.config.name }}
      default: {{ .Values.devicePlugin.config.default | quote }}
    {{- end }}
