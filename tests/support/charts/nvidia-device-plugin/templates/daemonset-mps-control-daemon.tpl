{{- if eq (include "nvdp.hasMps" .) "true" }}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-mps-control-daemon
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: nvidia-device-plugin-mps-control-daemon
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: nvidia-device-plugin-mps-control-daemon
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: nvidia-device-plugin-mps-control-daemon
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      {{- if .Values.runtimeClassName }}
      runtimeClassName: {{ .Values.runtimeClassName }}
      {{- end }}
      nodeSelector:
        nvidia.com/mps.capable: "true"
        {{- with .Values.nodeSelector }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.tolerations }}
      tolerations: {{ toYaml . | nindent 8 }}
      {{- end }}
      hostPID: true
      containers:
        - name: mps-control-daemon-ctr
          image: {{ include "nvdp.image" . | quote }}
          command: ["mps-control-daemon"]
{{- end }}
