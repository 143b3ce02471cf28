{{- $hasConfig := or .Values.config.name .Values.config.map }}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: nvidia-device-plugin
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: nvidia-device-plugin
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: nvidia-device-plugin
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      {{- include "nvdp.podSpecCommon" . | nindent 6 }}
      containers:
        {{- if $hasConfig }}
        - name: nvidia-device-plugin-sidecar
          image: {{ include "nvdp.image" . | quote }}
          command: ["config-manager"]
          env:
            - name: NODE_LABEL
              value: nvidia.com/device-plugin.config
            - name: DEFAULT_CONFIG
              value: {{ .Values.config.default | quote }}
            - name: FALLBACK_STRATEGIES
              value: {{ join "," .Values.config.fallbackStrategies | quote }}
        {{- end }}
        - name: nvidia-device-plugin-ctr
          image: {{ include "nvdp.image" . | quote }}
          command: ["nvidia-device-plugin"]
          env:
            {{- if .Values.migStrategy }}
            - name: MIG_STRATEGY
              value: {{ .Values.migStrategy | quote }}
            {{- end }}
            {{- if $hasConfig }}
            - name: CONFIG_FILE
              value: /config/config.yaml
            {{- end }}
            - name: MPS_ROOT
              value: {{ .Values.mps.root | quote }}
