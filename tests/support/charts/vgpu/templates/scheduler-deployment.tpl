apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-scheduler
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/component: 4pd-scheduler
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/component: 4pd-scheduler
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/component: 4pd-scheduler
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: kube-scheduler
          image: "{{ .Values.scheduler.kubeScheduler.image }}:{{ .Values.scheduler.kubeScheduler.imageTag }}"
          imagePullPolicy: {{ .Values.scheduler.kubeScheduler.imagePullPolicy | quote }}
          command:
            - kube-scheduler
            {{- if ge (.Values.scheduler.kubeScheduler.imageTag | substr 3 5 | atoi) 22 }}
            - --config=/config/config.yaml
            {{- else }}
            - --scheduler-name={{ .Values.schedulerName }}
            - --policy-config-file=/config/config.json
            {{- end }}
        - name: vgpu-scheduler-extender
          image: "{{ .Values.scheduler.extender.image }}:{{ .Values.version }}"
          imagePullPolicy: {{ .Values.scheduler.extender.imagePullPolicy | quote }}
          command:
            - scheduler
            - --resource-name={{ .Values.resourceName }}
            - --resource-mem={{ .Values.resourceMem }}
            - --resource-cores={{ .Values.resourceCores }}
            - --resource-mem-percentage={{ .Values.resourceMemPercentage }}
            - --scheduler-name={{ .Values.schedulerName }}
            - --default-mem={{ .Values.scheduler.defaultMem }}
            - --default-cores={{ .Values.scheduler.defaultCores }}
