apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-device-plugin
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/component: 4pd-device-plugin
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/component: 4pd-device-plugin
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/component: 4pd-device-plugin
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      {{- if .Values.devicePlugin.runtimeClassName }}
      runtimeClassName: {{ .Values.devicePlugin.runtimeClassName }}
      {{- end }}
      hostPID: true
      containers:
        - name: device-plugin
          image: "{{ .Values.devicePlugin.image }}:{{ .Values.version }}"
          imagePullPolicy: {{ .Values.devicePlugin.imagePullPolicy | quote }}
          command:
            - nvidia-device-plugin
            - --resource-name={{ .Values.resourceName }}
            - --mig-strategy={{ .Values.devicePlugin.migStrategy }}
            - --device-memory-scaling={{ .Values.devicePlugin.deviceMemoryScaling }}
            - --device-cores-scaling={{ .Values.devicePlugin.deviceCoreScaling }}
            - --device-split-count={{ .Values.devicePlugin.deviceSplitCount }}
        - name: vgpu-monitor
          image: "{{ .Values.devicePlugin.monitorimage }}:{{ .Values.version }}"
          command:
            - vGPUmonitor
      {{- if .Values.devicePlugin.nvidianodeSelector }}
      nodeSelector: {{ toYaml .Values.devicePlugin.nvidianodeSelector | nindent 8 }}
      {{- end }}
      {{- if .Values.devicePlugin.tolerations }}
      tolerations: {{ toYaml .Values.devicePlugin.tolerations | nindent 8 }}
      {{- end }}
